"""The executor contract: a schema for the arguments and an async body.

Arguments are checked against the schema before anything runs: unknown names, missing required
ones, wrong types and values outside ``choices`` are refused with a :class:`CommandRefused`
(the reply says why; nothing was done).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hactl.errors import HactlError
from hactl.minion import procfind
from hactl.minion.executors.policy import ContentPolicy
from hactl.minion.planned import PlannedWork
from hactl.minion.vrrp_yield import YieldKeeper

if TYPE_CHECKING:  # minion/singleton.py builds on this module
    from hactl.minion.singleton import SingletonKeeper
from hactl.schema import Field, SchemaError, check


class CommandRefused(HactlError):
    """A command was refused before doing anything."""

    def __init__(self, cmd: str, reason: str) -> None:
        super().__init__(f"{cmd} refused: {reason}")
        self.cmd = cmd
        self.reason = reason


#: an executor argument: the project's one schema field (hactl/schema.py)
Arg = Field


def _read_pid(path: str) -> int | None:
    """The pid a pid file holds (None: no path, no file, or no number in it)."""
    if not path:
        return None
    try:
        pid = int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid > 0 else None


@dataclass(frozen=True, slots=True)
class ServiceCommands:
    """How to start/stop/reload/restart one service where there is no systemd.

    ``status`` (exit 0 = running) or ``pidfile`` (its pid alive = running) tells whether it
    runs. In any argument, ``{pid}`` is replaced by the pid read from ``pidfile`` (for
    ``haproxy ... -sf {pid}``); nothing from a request is ever substituted.
    """

    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    reload: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    #: run before a planned stop or restart (an apply's, a roll's, ``service.stop``), never
    #: before the start of a daemon that died: RabbitMQ's ``rabbitmq-upgrade drain`` (its
    #: clients closed, its quorum-queue leaders moved, before it goes; its boot revives it).
    #: Its failure is logged and the stop goes on. Under systemd too.
    pre_stop: tuple[str, ...] = ()
    pidfile: str = ""
    #: seconds a started daemon may take to show it runs (its pid file, its status) before
    #: supervision counts the start failed and starts it again (systemd's TimeoutStartSec):
    #: a broker that writes its pid file late needs it, or a second copy is started
    start_grace: float = 0.0
    #: the daemon's command line (program, then arguments it always has: its config file):
    #: a process that matches runs it even when the pid file is gone (minion/procfind.py)
    process: tuple[str, ...] = ()
    #: the pid files of the daemon's other processes (keepalived's ``-r``/``-c`` children):
    #: a start first waits until neither these nor ``pidfile`` name a process still present
    pidfiles: tuple[str, ...] = ()

    def pid(self) -> int | None:
        """The live pid from ``pidfile``; else the process ``process`` names; else None."""
        pid = self._from_file()
        if pid is None and self.process:
            # not one of its children (keepalived's VRRP child has the parent's very command
            # line): a child still exiting after its parent's kill -9 is not the daemon, and
            # taking it for one left keepalived down after an apply that "found it running"
            children = {_read_pid(path) for path in self.pidfiles}
            pid = procfind.find(self.process, exclude={c for c in children if c is not None})
        return pid

    def _from_file(self) -> int | None:
        pid = _read_pid(self.pidfile)
        if pid is None:
            return None
        try:
            os.kill(pid, 0)
            # a killed daemon not yet reaped (a zombie) is not running
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None
        return None if state == "Z" else pid

    def leftovers(self) -> list[int]:
        """Pids that ``pidfile`` and ``pidfiles`` name and that still exist, zombies
        included: a daemon checks its pid files with ``kill(pid, 0)`` at start, which a
        killed copy's exiting children and an unreaped zombie both pass -- it then takes
        itself for a second copy and quits with status 0 (keepalived does)."""
        pids = (_read_pid(path) for path in (self.pidfile, *self.pidfiles))
        return [pid for pid in pids if pid is not None and Path(f"/proc/{pid}").exists()]

    def argv(self, action: str) -> list[str]:
        """The command for ``action`` with ``{pid}`` filled in ('' when there is no pid)."""
        pid = self.pid()
        return [a.replace("{pid}", str(pid) if pid else "") for a in getattr(self, action)]


@dataclass(frozen=True, slots=True)
class GaleraSettings:
    """Where the local MariaDB Galera node lives (the ``galera`` section of minion.yaml)."""

    defaults_file: str
    datadir: str
    socket: str
    pid_file: str = ""
    mariadbd: str = "/usr/sbin/mariadbd"


@dataclass(frozen=True, slots=True)
class RabbitSettings:
    """How to reach the local RabbitMQ node's CLI (the ``rabbitmq`` section of minion.yaml)."""

    node: str
    rabbitmqctl: tuple[str, ...] = ("rabbitmqctl",)
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def node_dir(self) -> str:
        """The node's database folder, as the broker finds it: ``RABBITMQ_MNESIA_DIR``, else
        ``<RABBITMQ_MNESIA_BASE>/<node>`` (Debian: ``/var/lib/rabbitmq/mnesia/rabbit@<host>``)."""
        if self.env.get("RABBITMQ_MNESIA_DIR"):
            return self.env["RABBITMQ_MNESIA_DIR"]
        base = self.env.get("RABBITMQ_MNESIA_BASE") or "/var/lib/rabbitmq/mnesia"
        return f"{base.rstrip('/')}/{self.node}"


@dataclass(frozen=True, slots=True)
class KeystoneSettings:
    """How to run ``keystone-manage`` on this node (the ``keystone`` section of minion.yaml):
    the argv (on a real controller ``[runuser, -u, keystone, --, keystone-manage]``, as
    Debian's postinst runs it) and the keystone.conf the states write."""

    config: str
    manage: tuple[str, ...] = ("keystone-manage",)
    env: Mapping[str, str] = field(default_factory=dict)


#: Config checks by name (minion.yaml ``check_commands`` may replace or add): exact argv, an
#: absolute program, ``{path}`` the staged file. A request names one; it never sends an argv.
DEFAULT_CHECKS: Mapping[str, tuple[str, ...]] = {
    "haproxy": ("/usr/sbin/haproxy", "-c", "-f", "{path}"),
    "keepalived": ("/usr/sbin/keepalived", "-t", "-f", "{path}"),
}


#: checks that run as the minion even when it is root (sandbox.py): ``keepalived -t`` parses
#: and runs nothing, and its script-security verdict is only right as root
DEFAULT_ROOT_CHECKS = frozenset({"keepalived"})

#: the kernel settings ``sysctl.present`` may set (what the shipped states need); minion.yaml
#: ``sysctls`` replaces the list
DEFAULT_SYSCTLS = frozenset({"net.ipv4.ip_nonlocal_bind"})


LeaseReader = Callable[[str], Awaitable[bytes | None]]


class SupervisionControl(Protocol):
    """What an executor may ask of the minion's supervisor (minion/supervisor.py)."""

    def cleanup(self, service: str = "") -> list[dict[str, Any]]:
        """Forget the failures of one supervised service (or all)."""
        ...


@dataclass(frozen=True, slots=True)
class ExecContext:
    """What executors may touch on this minion (from minion.yaml)."""

    minion_id: str
    allowed_roots: tuple[Path, ...] = ()
    check_commands: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_CHECKS)
    )
    services: Mapping[str, ServiceCommands] = field(default_factory=dict)
    sysctls: frozenset[str] = DEFAULT_SYSCTLS
    content_policy: ContentPolicy = field(default_factory=ContentPolicy)
    #: who config checks run as when the minion is root (minion/executors/sandbox.py)
    check_user: str = "nobody"
    #: checks that stay root (keepalived -t runs nothing, and judges script security only
    #: as root: as nobody it disables a root track script and exits 5)
    checks_as_root: frozenset[str] = DEFAULT_ROOT_CHECKS
    haproxy_socket: str = ""
    use_systemd: bool = False
    command_timeout: float = 30.0
    galera: GaleraSettings | None = None
    rabbitmq: RabbitSettings | None = None
    keystone: KeystoneSettings | None = None
    #: reads one key of the lease bucket (a direct get over the minion's connection); None
    #: until connected. galera.bootstrap checks its lease with it (hactl/wire/leases.py).
    leases: LeaseReader | None = None
    #: reads one key of the maintenance bucket (the supervisor's check); None until connected
    maint: LeaseReader | None = None
    #: the writer of the yield files keepalived tracks (minion.yaml ``vrrp``); None without
    vrrp: YieldKeeper | None = None
    #: the singleton keeper (minion.yaml ``singletons``; minion/singleton.py); None without
    singletons: SingletonKeeper | None = None
    #: the services hactl is stopping or restarting right now: supervision leaves them alone
    planned: PlannedWork = field(default_factory=PlannedWork)
    #: the supervisor (``supervision.cleanup``); None when minion.yaml supervises nothing
    supervision: SupervisionControl | None = None
    #: polls every beacon now and has each report (``beacon.resync``); the beacons' names
    resync: Callable[[], list[str]] | None = None


Body = Callable[[ExecContext, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Executor:
    """A command the master may send: its schema and its body."""

    name: str
    args: tuple[Arg, ...]
    body: Body
    doc: str = ""


def validate_args(ex: Executor, given: Mapping[str, Any]) -> dict[str, Any]:
    """Checked arguments with defaults filled in, or :class:`CommandRefused`."""
    try:
        return check(ex.name, ex.args, given)
    except SchemaError as exc:
        why = f"{exc.field} {exc.reason}" if exc.field else exc.reason
        raise CommandRefused(ex.name, why) from None


def require_argv(cmd: str, value: Any, what: str) -> list[str]:
    """An argument list of non-empty strings (never a shell string)."""
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v and "\x00" not in v for v in value)
    ):
        raise CommandRefused(cmd, f"{what} must be a non-empty list of strings")
    return list(value)
