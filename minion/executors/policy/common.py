"""What every daemon's reader shares: the policy itself, the violation, path confinement."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from hactl.errors import HactlError

#: the command the shipped keepalived state checks HAProxy with (states/pillar/site.yaml)
SHIPPED_CHECK = "/usr/bin/curl -fsS -m 0.5 -o /dev/null http://127.0.0.1:8405/healthz"
#: where the shipped keepalived state's track files live (pillar paths.vrrp_track_dir)
SHIPPED_TRACK_DIR = "/run/hactl"

#: which reader a file gets, by its path (fnmatch, ``*`` crosses ``/``); a ``check`` name
#: that is a daemon's (haproxy, keepalived) decides first
DEFAULT_FORMATS = frozenset(
    {
        "/etc/haproxy/*=haproxy",
        "*/haproxy*.cfg=haproxy",
        "/etc/keepalived/*=keepalived",
        "*/keepalived*.conf=keepalived",
        "/etc/mysql/*=mariadb",
        "*.cnf=mariadb",
        "*.pem=pem",
        "/etc/keystone/*=oslo",
        "*/keystone*.conf=oslo",
    }
)


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """minion.yaml ``content_policy``: what rendered configs may make a daemon run or read.

    Every field is a set of strings (minion.yaml gives each as a list, replacing the default).
    """

    #: exact command lines keepalived may run (``script``, ``notify*``, ...)
    programs: frozenset[str] = frozenset({SHIPPED_CHECK})
    #: ``wsrep_provider`` values (the Galera library mariadbd loads)
    providers: frozenset[str] = frozenset({"/usr/lib/galera/libgalera_smm.so"})
    #: ``wsrep_sst_method`` values (each runs the packaged ``wsrep_sst_<method>`` script)
    sst_methods: frozenset[str] = frozenset({"rsync", "mariabackup"})
    #: ``user`` values for mariadbd (never root: SST scripts run as this user)
    db_users: frozenset[str] = frozenset({"mysql"})
    #: folders a keepalived ``track_file`` / ``vrrp_notify_fifo`` may name (keepalived creates
    #: them as root); minion.yaml ``vrrp.track_dir`` is added by itself
    track_dirs: frozenset[str] = frozenset({SHIPPED_TRACK_DIR})
    #: folders HAProxy may read (certificates, CA files, server state) and put its sockets
    #: and pid file in -- never a file it serves to clients (that is ``serve_dirs``)
    read_dirs: frozenset[str] = frozenset(
        {"/etc/haproxy", "/etc/ssl/certs", "/var/lib/haproxy", "/run/haproxy"}
    )
    #: folders of files HAProxy may send to clients or match requests against
    #: (``errorfile``, ``return ... file``, map and ACL files)
    serve_dirs: frozenset[str] = frozenset(
        {"/usr/share/haproxy", "/etc/haproxy/errors", "/etc/haproxy/maps"}
    )
    #: folders a path option of an oslo.config file (keystone.conf) may name: log files, the
    #: fernet key repository, policy and TLS files
    oslo_dirs: frozenset[str] = frozenset(
        {"/etc/keystone", "/var/lib/keystone", "/var/log/keystone", "/etc/ssl/certs"}
    )
    #: ``GLOB=FORMAT`` pairs: the reader (haproxy, keepalived, mariadb, oslo, pem) a path gets
    formats: frozenset[str] = DEFAULT_FORMATS
    #: ``DAEMON:KEYWORD`` additions to a reader's keyword allowlist (e.g. ``haproxy:filter``);
    #: a keyword that runs or loads code stays refused whatever this says
    keywords: frozenset[str] = frozenset()

    def added(self, daemon: str) -> frozenset[str]:
        """The keywords this minion adds to ``daemon``'s allowlist."""
        prefix = daemon + ":"
        return frozenset(k[len(prefix) :] for k in self.keywords if k.startswith(prefix))


class PolicyViolation(HactlError):
    """One refused directive: the line number and why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def no_control(no: int, line: str, daemon: str) -> None:
    """Refuse control characters (other than tab) and a trailing backslash: the daemons split
    words and lines on them in ways that differ from each other (HAProxy ends a line at CR,
    keepalived continues a line ending in a backslash, MariaDB does not)."""
    if (m := _CONTROL.search(line)) is not None:
        raise PolicyViolation(
            no, f"{daemon}: control character {m.group()!r} refused (only tab and newline)"
        )
    if line.rstrip(" \t").endswith("\\"):
        raise PolicyViolation(no, f"{daemon}: a line ending in a backslash is refused")


def confined(path: str, dirs: frozenset[str]) -> bool:
    """Whether ``path`` is absolute, has no ``..`` and lies under one of ``dirs``."""
    if not path.startswith("/") or ".." in path.split("/") or "\x00" in path:
        return False
    norm = os.path.normpath(path)
    for d in dirs:
        root = os.path.normpath(d)
        if norm == root or norm.startswith(root.rstrip("/") + "/"):
            return True
    return False


def words_of(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text`` (a keyword table written as prose)."""
    return frozenset(text.split())


def unquote(text: str) -> str:
    """``text`` without one pair of matching surrounding quotes."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text
