"""HAProxy's config, read the way HAProxy 2.6 reads it, against a keyword allowlist.

The lexer follows HAProxy's ``parse_line()`` (checked against ``haproxy -c``, whose "unknown
keyword" alerts name the word it saw: tests/integration/test_policy_daemons.py): words split on
space, tab, VT and FF; an unquoted ``#`` anywhere starts a comment; ``\\``, ``\\ ``, ``\\#``,
``\\'``, ``\\"``, ``\\t``, ``\\n``, ``\\r`` and ``\\xNN`` are unescaped outside single quotes;
quotes join into the word they touch; ``$NAME``/``${NAME}`` is expanded inside double quotes
(refused: the value is the environment's, not the file's). No line continues onto the next.

Strict mode (a file HAProxy reads: ``check: haproxy`` or a haproxy path) allows only the
keywords of each section listed below, and confines every path argument: files HAProxy uses
(certificates, CA files, state, sockets, the pid file) to ``read_dirs``, files it serves or
matches requests against (``errorfile``, ``return ... file``, map and ACL files) to
``serve_dirs``; the admin socket only on a unix path; no server on a local socket.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hactl.minion.executors.policy.common import (
    ContentPolicy,
    PolicyViolation,
    confined,
    no_control,
    words_of,
)

#: keywords that run or load code: refused in every file, whatever the allowlist says
REFUSED = frozenset(
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
        "module-path",
        "module-load",
    }
)

_GLOBAL = words_of(
    """log log-send-hostname log-tag chroot daemon master-worker maxconn maxconnrate
    maxsessrate maxsslconn maxsslrate maxpipes maxzlibmem nbthread cpu-map pidfile stats user
    group uid gid node description ca-base crt-base ssl-default-bind-ciphers
    ssl-default-bind-ciphersuites ssl-default-bind-options ssl-default-server-ciphers
    ssl-default-server-ciphersuites ssl-default-server-options ssl-dh-param-file
    ssl-server-verify spread-checks max-spread-checks hard-stop-after server-state-file
    server-state-base localpeer quiet zero-warning noepoll nopoll nosplice nogetaddrinfo
    noreuseport busy-polling strict-limits unix-bind h1-case-adjust h1-case-adjust-file
    numa-cpu-mapping thread-groups ulimit-n set-var issuers-chain-path
    ssl-load-extra-files ssl-load-extra-del-ext ssl-skip-self-issued-ca"""
)
_PROXY = words_of(
    """acl backlog balance bind capture compression cookie declare default-server
    default_backend description disabled enabled errorfile errorfiles errorloc errorloc302
    errorloc303 force-persist fullconn hash-type hash-balance-factor http-after-response
    http-check http-error http-request http-response http-reuse http-send-name-header id
    ignore-persist load-server-state-from-file log log-format log-format-sd error-log-format
    log-tag max-keep-alive-queue max-session-srv-conns maxconn mode monitor monitor-uri
    option persist rate-limit redirect retries retry-on server server-state-file-name
    server-template source stats stick stick-table tcp-check tcp-request tcp-response timeout
    unique-id-format unique-id-header use-server use_backend"""
)
_SECTIONS: dict[str, frozenset[str]] = {
    "global": _GLOBAL,
    "defaults": _PROXY,
    "frontend": _PROXY,
    "backend": _PROXY,
    "listen": _PROXY,
    "userlist": frozenset({"user", "group"}),
    "peers": words_of(
        "peer bind server default-server default-bind table disabled enabled log shards"
    ),
    "resolvers": words_of(
        "nameserver parse-resolv-conf hold resolve_retries timeout accepted_payload_size"
    ),
    "http-errors": frozenset({"errorfile"}),
    "cache": words_of("total-max-size max-age max-object-size process-vary max-secondary-entries"),
    "mailers": frozenset({"mailer", "timeout"}),
    "ring": words_of("description format maxlen size timeout server"),
}
#: options whose next word is a file HAProxy reads (certificates, CA and CRL files, state)
_READ_ARGS = words_of(
    """crt ca-file crl-file crt-list ca-verify-file ca-sign-file issuers-chain-path
    ssl-dh-param-file server-state-file server-state-base ca-base crt-base
    h1-case-adjust-file chroot server-state-file-name"""
)
#: words whose next word is a file HAProxy serves or matches requests against
_SERVE_ARGS = frozenset({"file", "lf-file", "-f"})
_MAP_FILE = re.compile(r"(?:map(?:_\w+)?|set-map|add-acl|del-acl|del-map|add-map)\(([^,)]*)")
_LOCAL_SOCKET = ("/", "unix@", "abns@", "sockpair@", "fd@")
_ESCAPES = {" ": " ", "\\": "\\", "#": "#", "'": "'", '"': '"', "t": "\t", "n": "\n", "r": "\r"}
_SEPARATORS = " \t\v\f"
_HEX = re.compile(r"[0-9A-Fa-f]{2}")
_ENV = re.compile(r"\$[{A-Za-z_]")


def words(no: int, line: str) -> list[str]:
    """The words HAProxy's ``parse_line()`` makes of one line."""
    out: list[str] = []
    cur: list[str] = []
    started, quote, i = False, "", 0
    while i < len(line):
        c = line[i]
        if c == "\\" and quote != "'" and i + 1 < len(line):
            nxt = line[i + 1]
            if nxt in _ESCAPES:
                cur.append(_ESCAPES[nxt])
                started, i = True, i + 2
                continue
            if nxt == "x" and _HEX.fullmatch(line[i + 2 : i + 4]):
                cur.append(chr(int(line[i + 2 : i + 4], 16)))
                started, i = True, i + 4
                continue
        if not quote:
            if c in _SEPARATORS:
                if started:
                    out.append("".join(cur))
                cur, started, i = [], False, i + 1
                continue
            if c == "#":
                break
            if c in "\"'":
                quote, started, i = c, True, i + 1
                continue
        elif c == quote:
            quote, i = "", i + 1
            continue
        if quote == '"' and _ENV.match(line, i):
            raise PolicyViolation(
                no, "haproxy: environment variables are refused (the file must say it all)"
            )
        cur.append(c)
        started, i = True, i + 1
    if quote:
        raise PolicyViolation(no, "haproxy: unterminated quote")
    if started:
        out.append("".join(cur))
    return out


def _lines(text: str) -> Iterator[tuple[int, list[str]]]:
    # CR and NUL end a line for HAProxy: read what follows them as lines of their own too
    for no, raw in enumerate(text.split("\n"), 1):
        for part in re.split(r"[\r\x00]", raw):
            ws = words(no, part)
            if ws:
                yield no, ws


def _code(no: int, ws: list[str]) -> None:
    """Refuse what runs or loads code (both modes)."""
    first = ws[0]
    kw = ws[1] if first in ("no", "default") and len(ws) > 1 else first
    if kw in REFUSED or kw.startswith(("lua-", "ssl-provider")):
        raise PolicyViolation(no, f"haproxy {kw!r} runs or loads code: refused")
    if kw == "option" and any(w == "external-check" for w in ws[1:3]):
        raise PolicyViolation(no, "haproxy 'option external-check' runs a program: refused")


def check_any(text: str) -> None:
    """Any file: nothing HAProxy would read as running or loading code."""
    for no, ws in _lines(text):
        _code(no, ws)


def check_strict(text: str, policy: ContentPolicy) -> None:
    """A file HAProxy reads: known sections and keywords only, every path confined."""
    section = ""
    extra = policy.added("haproxy")
    based = False
    for no, raw in enumerate(text.split("\n"), 1):
        no_control(no, raw, "haproxy")
        ws = words(no, raw)
        if not ws:
            continue
        _code(no, ws)
        kw = ws[1] if ws[0] in ("no", "default") and len(ws) > 1 else ws[0]
        if kw in _SECTIONS:
            section = kw
            continue
        if not section:
            raise PolicyViolation(no, f"haproxy {kw!r} outside a section")
        allowed = _SECTIONS[section] | extra
        if kw not in allowed and not (section == "global" and kw.startswith("tune.")):
            raise PolicyViolation(
                no,
                f"haproxy {kw!r} is not in hactl's allowlist for '{section}' sections "
                "(content_policy.keywords adds one: haproxy:KEYWORD)",
            )
        based = based or kw in ("ca-base", "crt-base", "server-state-base")
        _paths(no, kw, ws, policy, based)


def _paths(no: int, kw: str, ws: list[str], policy: ContentPolicy, based: bool) -> None:
    def need(path: str, dirs: frozenset[str], what: str) -> None:
        relative_ok = based and not path.startswith("/") and ".." not in path.split("/")
        if not (relative_ok or confined(path, dirs)):
            raise PolicyViolation(
                no,
                f"haproxy {what} {path!r}: not under this minion's content_policy "
                f"({', '.join(sorted(dirs)) or 'none'})",
            )

    if kw == "pidfile" and len(ws) > 1:
        if not ws[1].endswith(".pid"):
            raise PolicyViolation(no, f"haproxy pidfile {ws[1]!r}: must end in .pid")
        need(ws[1], policy.read_dirs | {"/run", "/var/run"}, "pidfile")
    if kw == "stats" and len(ws) > 2 and ws[1] == "socket":
        addr = ws[2].removeprefix("unix@")
        if not addr.startswith("/"):
            raise PolicyViolation(
                no, f"haproxy stats socket {ws[2]!r}: only on a unix path (never the network)"
            )
        need(addr, policy.read_dirs, "stats socket")
    if kw in ("bind", "log") and len(ws) > 1:
        for addr in ws[1].split(","):
            path = addr.removeprefix("unix@")
            if path.startswith("/") and path != "/dev/log":
                need(path, policy.read_dirs, f"{kw} socket")
    if (
        kw in ("server", "peer", "nameserver", "mailer")
        and ws[2:3]
        and ws[2].startswith(_LOCAL_SOCKET)
    ):
        raise PolicyViolation(no, f"haproxy {kw} {ws[2]!r}: a local socket is refused")
    if kw == "server-template" and len(ws) > 3 and ws[3].startswith(_LOCAL_SOCKET):
        raise PolicyViolation(no, f"haproxy server-template {ws[3]!r}: a local socket is refused")
    if kw == "errorfile" and len(ws) > 2:
        need(ws[2], policy.serve_dirs, "errorfile")
    for i, w in enumerate(ws[:-1]):
        if w in _READ_ARGS and (i > 0 or kw in _READ_ARGS):
            need(ws[i + 1], policy.read_dirs, w)
        if w in _SERVE_ARGS and i > 0:
            need(ws[i + 1], policy.serve_dirs, w)
    for w in ws:
        for m in _MAP_FILE.finditer(w):
            need(m.group(1), policy.serve_dirs, "map/ACL file")
