"""The config-content policy: what a file written by hactl may make a root daemon run.

The master renders configs that keepalived, HAProxy and MariaDB (started as root) read. Those
formats can run programs or load code; a master or admin key in the wrong hands would then be
root on every node. Before ``file.apply`` writes anything, the minion reads the new content as
each of those daemons would and refuses it when a directive that runs a program or loads code
names something not on *this minion's own* allowlist (minion.yaml ``content_policy``). The
check is by content, not by path: a keepalived directive is refused in any file, so writing the
payload under another name and including it does not pass either (includes are refused too).

Directives covered (a test per directive in ``tests/unit/test_content_policy.py``):

- keepalived: ``script``, ``notify*``, ``misc_path``, ``quorum_up|down``, the notify-fifo
  scripts -- the whole command line must be one of ``programs`` (exact match); ``include``,
  ``$NAME=`` definitions and ``~SEQ`` line generators are refused (they would hide the rest);
  a ``track_file``'s ``file`` must sit directly in one of ``track_dirs`` (keepalived creates
  it as root) and ``init_file ... overwrite`` is refused.
- HAProxy: ``lua-load*``, ``lua-prepend-path``, ``external-check``, ``option external-check``,
  ``program`` sections, ``insecure-fork-wanted``, ``insecure-setuid-wanted``, ``ssl-engine``,
  ``ssl-provider*`` (loads a shared object); a keyword built from ``$`` or quotes is refused.
- MariaDB/Galera: ``wsrep_notify_cmd``, ``plugin_load*``, ``plugin_dir``, ``init_file``,
  ``malloc_lib``, ``ledir``, ``mysqld``, ``!include*`` are refused; ``wsrep_provider`` must be
  one of ``providers``, ``wsrep_sst_method`` one of ``sst_methods``, ``user`` one of
  ``db_users``. Option prefixes (``loose-``, ``enable-``, ``maximum-``), dashes for
  underscores and unambiguous abbreviations are all read as the server reads them.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

#: the command the shipped keepalived state checks HAProxy with (states/pillar/site.yaml)
SHIPPED_CHECK = "/usr/bin/curl -fsS -m 0.5 -o /dev/null http://127.0.0.1:8405/healthz"
#: where the shipped keepalived state's track files live (pillar paths.vrrp_track_dir)
SHIPPED_TRACK_DIR = "/run/hactl"


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """minion.yaml ``content_policy``: what rendered configs may make a daemon run or load."""

    #: exact command lines keepalived may run (``script``, ``notify*``, ...)
    programs: frozenset[str] = frozenset({SHIPPED_CHECK})
    #: ``wsrep_provider`` values (the Galera library mariadbd loads)
    providers: frozenset[str] = frozenset({"/usr/lib/galera/libgalera_smm.so"})
    #: ``wsrep_sst_method`` values (each runs the packaged ``wsrep_sst_<method>`` script)
    sst_methods: frozenset[str] = frozenset({"rsync", "mariabackup"})
    #: ``user`` values for mariadbd (never root: SST scripts run as this user)
    db_users: frozenset[str] = frozenset({"mysql"})
    #: folders a keepalived ``track_file`` may name (keepalived creates the file as root with
    #: ``init_file``); minion.yaml ``vrrp.track_dir`` is added by itself
    track_dirs: frozenset[str] = frozenset({SHIPPED_TRACK_DIR})


_KEEPALIVED_EXEC = frozenset(
    {
        "script",
        "notify",
        "notify_master",
        "notify_backup",
        "notify_fault",
        "notify_stop",
        "notify_deleted",
        "notify_master_rx_lower_pri",
        "notify_up",
        "notify_down",
        "misc_path",
        "quorum_up",
        "quorum_down",
        "vrrp_notify_fifo_script",
        "lvs_notify_fifo_script",
        "notify_fifo_script",
    }
)
_KEEPALIVED_REFUSED = frozenset({"include"})
_HAPROXY_REFUSED = frozenset(
    {
        "lua-load",
        "lua-load-per-thread",
        "lua-prepend-path",
        "external-check",
        "program",
        "insecure-fork-wanted",
        "insecure-setuid-wanted",
        "ssl-engine",
        "ssl-provider",
        "ssl-provider-path",
    }
)
_MYSQL_REFUSED = (
    "wsrep_notify_cmd",
    "plugin_load",
    "plugin_load_add",
    "plugin_dir",
    "init_file",
    "malloc_lib",
    "ledir",
    "mysqld",
)
_MYSQL_VALUED = ("wsrep_provider", "wsrep_sst_method", "user")
_MYSQL_PREFIXES = ("loose_", "enable_", "maximum_")
_JSON_MEMBER = re.compile(r'"[^"$]*"\s*:')
_KEY = re.compile(r"[A-Za-z0-9_.-]+")


class PolicyViolation(ValueError):
    """One refused directive: the line number and why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) with comments and blank lines skipped; continuation
    lines (a trailing backslash) are joined as the daemons join them."""
    pending = ""
    start = 0
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending:
            start = no
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if (line and not line.startswith(("#", ";", "!"))) or line.startswith("!include"):
            yield start, line
    if pending.strip():
        yield start, pending.strip()


def _keepalived(no: int, line: str, policy: ContentPolicy) -> None:
    # a block may sit on one line ("vrrp_script x { script /bin/evil }"): every segment
    # between braces is read as a line of its own
    for segment in re.split(r"[{}]", line):
        body = segment.strip()
        if body.startswith("@"):  # "@ctl1 script ..." applies on host ctl1 only: same rules
            body = body.split(None, 1)[1] if " " in body else ""
        if not body:
            continue
        if body[0] in "$~":
            raise PolicyViolation(
                no,
                f"keepalived {body.split()[0]!r}: definitions and line "
                "generators are refused (they can hide a script)",
            )
        word, _, rest = body.partition(" ")
        if word in _KEEPALIVED_REFUSED:
            raise PolicyViolation(
                no, f"keepalived {word!r} is refused (an included file is not checked)"
            )
        if word == "file":  # inside track_file: keepalived reads it, init_file writes it
            _track_file(no, _unquote(rest.strip().split(" ", 1)[0]), policy)
        if word == "init_file" and "overwrite" in rest.split():
            raise PolicyViolation(
                no, "keepalived 'init_file ... overwrite' is refused (it rewrites a file as root)"
            )
        if word in _KEEPALIVED_EXEC:
            command = _unquote(rest.strip())
            if command not in policy.programs:
                raise PolicyViolation(
                    no,
                    f"keepalived {word} {command!r}: not one of this "
                    "minion's content_policy.programs",
                )


def _track_file(no: int, path: str, policy: ContentPolicy) -> None:
    norm = os.path.normpath(path)
    if not (
        os.path.isabs(path)
        and ".." not in path.split("/")
        and any(os.path.dirname(norm) == os.path.normpath(d) for d in policy.track_dirs)
    ):
        raise PolicyViolation(
            no,
            f"keepalived track file {path!r}: not directly in one of this minion's track"
            f" folders ({', '.join(sorted(policy.track_dirs)) or 'none: minion.yaml vrrp'})",
        )


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _haproxy(no: int, line: str) -> None:
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        words = line.split()
    if not words:
        return
    raw_first = line.split(maxsplit=1)[0]
    json_member = _JSON_MEMBER.match(line) is not None  # RabbitMQ definitions.json
    if "$" in raw_first or (raw_first[0] in "\"'" and not json_member):
        raise PolicyViolation(no, f"haproxy keyword {raw_first!r}: a keyword must be literal")
    first = words[0].lower()
    if first in _HAPROXY_REFUSED or first.startswith(("lua-", "ssl-provider")):
        raise PolicyViolation(no, f"haproxy {first!r} runs or loads code: refused")
    if first in ("option", "no") and any(w.lower() == "external-check" for w in words[1:3]):
        raise PolicyViolation(no, "haproxy 'option external-check' runs a program: refused")


def _mysql_key(line: str) -> tuple[str, str] | None:
    if line.startswith("["):
        return None
    key, sep, value = line.partition("=")
    key = key.strip().lower().replace("-", "_")
    if not _KEY.fullmatch(key):
        return None
    for prefix in _MYSQL_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key, _unquote(value.split("#", 1)[0].strip()) if sep else ""


def _names(key: str, full: tuple[str, ...]) -> str | None:
    """The option ``key`` stands for: itself, or a name it abbreviates (mysqld accepts an
    unambiguous prefix of a long option)."""
    if key in full:
        return key
    return next((n for n in full if n.startswith(key) and len(key) >= 3), None)


def _mysql(no: int, line: str, policy: ContentPolicy) -> None:
    if line.startswith("!include"):
        raise PolicyViolation(no, f"{line.split(maxsplit=1)[0]}: an included file is not checked")
    parsed = _mysql_key(line)
    if parsed is None:
        return
    key, value = parsed
    if (name := _names(key, _MYSQL_REFUSED)) is not None:
        raise PolicyViolation(no, f"mariadb option {name} runs or loads code: refused")
    name = _names(key, _MYSQL_VALUED)
    allowed = {
        "wsrep_provider": policy.providers,
        "wsrep_sst_method": policy.sst_methods,
        "user": policy.db_users,
    }
    if name is not None and value not in allowed[name]:
        raise PolicyViolation(
            no,
            f"mariadb {name}={value!r}: not one of this minion's "
            f"content_policy values ({', '.join(sorted(allowed[name]))})",
        )


def check_content(content: str | bytes, policy: ContentPolicy) -> None:
    """Raise :class:`PolicyViolation` for the first directive the policy refuses.

    Every daemon's rules apply to every file: a keepalived ``notify`` line is refused whether
    the file is called keepalived.conf or anything else a daemon could be told to include."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    for no, line in _lines(text):
        _keepalived(no, line, policy)
        _haproxy(no, line)
        _mysql(no, line, policy)
