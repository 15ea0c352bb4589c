"""minion.yaml, validated into a frozen :class:`MinionConfig` before anything runs.

Example::

    id: ctl1
    roles: [controller]
    heartbeat_interval: 10
    resync_interval: 30
    buffer_limit: 10000
    allowed_roots: [/etc/haproxy, /etc/keepalived]
    check_commands:    # by name; a request names one, never sends a command line
      haproxy: [/usr/sbin/haproxy, -c, -f, "{path}"]
      keepalived: [/usr/sbin/keepalived, -t, -f, "{path}"]
    check_user: nobody # checks run as this user, not root (root: no sandbox; docs/security.md)
    checks_as_root: [keepalived]  # keepalived -t runs nothing; it judges scripts only as root
    haproxy_socket: /run/haproxy/admin.sock
    services:
      haproxy: {reload: [systemctl, reload, haproxy]}
      # without systemd: how to run it, and how to know it runs even without its pid file
      # rabbitmq: {start: [...], pidfile: ..., process: [beam.smp, "rabbit@ctl1"]}
    health_agent:      # HAProxy's agent-check on a Galera node: up only while Synced
      address: 10.0.0.11
      port: 9200
    supervision:       # started again by the minion when they die (docs/minion.md)
      services: [haproxy, keepalived]
      threshold: 5     # deaths within window before it is left stopped and alerted
      window: 60
    content_policy:    # what rendered configs may make a root daemon run (docs/security.md)
      programs: ["/usr/bin/curl -fsS -m 0.5 -o /dev/null http://127.0.0.1:8405/healthz"]
      providers: [/usr/lib/galera/libgalera_smm.so]
      sst_methods: [rsync, mariabackup]
    beacons:
      vrrp: {fifo: /run/hactl/keepalived.fifo, pidfile: /run/keepalived.pid,
             instances: {VI_INTERNAL: {vips: [10.0.0.10]}}}
      haproxy: {socket: /run/haproxy/admin.sock}
      service: {endpoints: [{name: keystone, url: "http://10.0.0.10:5000/"}]}
      galera: {socket: /run/mysqld/mysqld.sock, datadir: /var/lib/mysql}
      rabbitmq: {node: rabbit@ctl1, user: hactl, password_file: /etc/hactl/rabbit.pw}
    galera:            # for galera.position|bootstrap|start
      defaults_file: /etc/mysql/my.cnf
      datadir: /var/lib/mysql
      socket: /run/mysqld/mysqld.sock
      pid_file: /run/mysqld/mysqld.pid
    rabbitmq:          # for rabbitmq.forget_node
      node: rabbit@ctl1
      rabbitmqctl: [rabbitmqctl]
      env: {HOME: /var/lib/rabbitmq}
    keystone:          # for keystone.db (db_sync, bootstrap)
      config: /etc/keystone/keystone.conf
      manage: [runuser, -u, keystone, --, keystone-manage]
    vrrp:              # for vrrp.yield: the files keepalived tracks (states/keepalived)
      track_dir: /run/hactl
      instances: [VI_INTERNAL, VI_EXTERNAL]
      max_seconds: 120
      watch: [haproxy]   # its death flagged for keepalived at once (services.haproxy.pidfile)
    metrics: 127.0.0.1:9465  # Prometheus endpoint (none when absent)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hactl import yamlsrc
from hactl.errors import ConfigError, TagError, UsageError
from hactl.metrics import parse_address
from hactl.minion import config_exec as exec_cfg
from hactl.minion.beacons import OPTIONS as BEACON_OPTIONS
from hactl.minion.beacons import REGISTRY as BEACONS
from hactl.minion.beacons.service import endpoints as service_endpoints
from hactl.minion.executors.base import (
    DEFAULT_CHECKS,
    DEFAULT_ROOT_CHECKS,
    DEFAULT_SYSCTLS,
    ExecContext,
    GaleraSettings,
    KeystoneSettings,
    RabbitSettings,
    ServiceCommands,
)
from hactl.minion.executors.policy import ContentPolicy
from hactl.minion.health_agent import AgentPolicy
from hactl.minion.singleton import SingletonSettings
from hactl.minion.supervisor import SupervisionPolicy
from hactl.minion.vrrp_yield import VrrpSettings, YieldKeeper
from hactl.schema import SchemaError, check
from hactl.wire.tags import validate_id

_TOP = {
    "id",
    "roles",
    "heartbeat_interval",
    "resync_interval",
    "buffer_limit",
    "allowed_roots",
    "check_commands",
    "check_user",
    "checks_as_root",
    "sysctls",
    "content_policy",
    "supervision",
    "health_agent",
    "haproxy_socket",
    "services",
    "beacons",
    "command_timeout",
    "galera",
    "rabbitmq",
    "keystone",
    "vrrp",
    "singletons",
    "metrics",
}


@dataclass(frozen=True, slots=True)
class MinionConfig:
    """Everything a minion needs, checked."""

    id: str
    roles: tuple[str, ...] = ()
    heartbeat_interval: float = 10.0
    resync_interval: float = 30.0
    buffer_limit: int = 10_000
    allowed_roots: tuple[Path, ...] = ()
    check_commands: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_CHECKS)
    )
    sysctls: frozenset[str] = DEFAULT_SYSCTLS
    content_policy: ContentPolicy = field(default_factory=ContentPolicy)
    check_user: str = "nobody"
    checks_as_root: frozenset[str] = DEFAULT_ROOT_CHECKS
    supervision: SupervisionPolicy | None = None
    health_agent: AgentPolicy | None = None
    haproxy_socket: str = ""
    services: Mapping[str, ServiceCommands] = field(default_factory=dict)
    beacons: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    command_timeout: float = 30.0
    galera: GaleraSettings | None = None
    rabbitmq: RabbitSettings | None = None
    keystone: KeystoneSettings | None = None
    vrrp: VrrpSettings | None = None
    singletons: SingletonSettings | None = None
    metrics: str = ""  # host:port of the Prometheus endpoint ('' = none)

    def exec_context(self) -> ExecContext:
        """What the executors may touch."""
        return ExecContext(
            minion_id=self.id,
            allowed_roots=self.allowed_roots,
            check_commands=self.check_commands,
            sysctls=self.sysctls,
            content_policy=self.content_policy,
            check_user=self.check_user,
            checks_as_root=self.checks_as_root,
            services=self.services,
            haproxy_socket=self.haproxy_socket,
            use_systemd=os.path.isdir("/run/systemd/system"),
            command_timeout=self.command_timeout,
            galera=self.galera,
            rabbitmq=self.rabbitmq,
            keystone=self.keystone,
            vrrp=YieldKeeper(self.vrrp) if self.vrrp is not None else None,
        )


def _section(
    raw: dict[str, Any], key: str, cls: type[Any], bad: Callable[[str, str], ConfigError]
) -> Any:
    """A settings dataclass from one mapping section, or None when the section is absent."""
    spec = raw.get(key)
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise bad(key, "must be a mapping")
    names = {f.name for f in fields(cls)}
    if unknown := sorted(set(spec) - names):
        raise bad(
            key, f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})"
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise bad(key, str(exc)) from None


def parse_config(text: str, source: str, *, minion_id: str | None = None) -> MinionConfig:
    """Parse and validate minion.yaml content; errors name ``source`` and the line."""
    doc = yamlsrc.load(text, source)  # aliases and duplicate keys refused, with the line
    raw = {} if doc.data is None else doc.data
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping", file=source, line=1)

    def bad(key: str, detail: str) -> ConfigError:
        return ConfigError(f"{key}: {detail}", file=source, line=doc.line(key))

    for key in raw:
        if key not in _TOP:
            raise bad(str(key), f"unknown setting (known: {', '.join(sorted(_TOP))})")
    ident = minion_id or raw.get("id")
    if not isinstance(ident, str):
        raise bad("id", "the minion id is required (here or --id)")
    try:
        validate_id(ident)
    except TagError as exc:
        raise bad("id", exc.reason) from None
    beacons = raw.get("beacons") or {}
    if not isinstance(beacons, dict):
        raise bad("beacons", "must be a mapping of beacon name to options")
    for name, opts in beacons.items():
        if name not in BEACONS:
            raise bad("beacons", f"unknown beacon {name!r} (known: {', '.join(sorted(BEACONS))})")
        if not isinstance(opts, dict):
            raise bad("beacons", f"{name}: options must be a mapping")
    for name, opts in beacons.items():
        try:
            checked = check(f"beacons.{name}", BEACON_OPTIONS[name], opts)
            if name == "service":
                service_endpoints(checked)  # each entry and its CA file, before anything runs
        except (SchemaError, ConfigError) as exc:
            raise ConfigError(str(exc), file=source, line=doc.line("beacons")) from None
        if (pw := opts.get("password_file")) is not None and not os.access(pw, os.R_OK):
            raise bad("beacons", f"{name}.password_file: {pw} is not a readable file")
    galera = _section(raw, "galera", GaleraSettings, bad)
    rabbitmq = _section(raw, "rabbitmq", RabbitSettings, bad)
    keystone = _section(raw, "keystone", KeystoneSettings, bad)
    vrrp = _vrrp(raw, beacons, bad)
    singletons = _section(raw, "singletons", SingletonSettings, bad)
    services = exec_cfg.services(raw, bad)
    try:
        return MinionConfig(
            id=ident,
            roles=tuple(str(r) for r in raw.get("roles") or ()),
            heartbeat_interval=_number(raw, "heartbeat_interval", 10.0, (0.05, 3600), bad),
            resync_interval=_number(raw, "resync_interval", 30.0, (0.1, 86_400), bad),
            buffer_limit=int(_number(raw, "buffer_limit", 10_000, (1, 10_000_000), bad)),
            allowed_roots=tuple(Path(p) for p in raw.get("allowed_roots") or ()),
            check_commands=exec_cfg.checks(raw.get("check_commands"), source),
            sysctls=exec_cfg.sysctls(raw.get("sysctls"), source),
            content_policy=_with_track_dir(exec_cfg.policy(raw.get("content_policy"), bad), vrrp),
            supervision=_supervision(raw.get("supervision"), set(services), bad),
            health_agent=_agent(raw.get("health_agent"), beacons, bad),
            check_user=exec_cfg.check_user(raw, bad),
            checks_as_root=exec_cfg.root_checks(raw, bad),
            haproxy_socket=str(raw.get("haproxy_socket") or ""),
            services=services,
            # the checked options, defaults filled in: what each beacon receives and reads
            beacons={
                str(k): check(f"beacons.{k}", BEACON_OPTIONS[k], v) for k, v in beacons.items()
            },
            command_timeout=_number(raw, "command_timeout", 30.0, (0.1, 3600), bad),
            galera=galera,
            rabbitmq=rabbitmq,
            keystone=keystone,
            vrrp=vrrp,
            singletons=singletons,
            metrics=_metrics(raw, bad),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value: {exc}", file=source) from None


def _metrics(raw: dict[str, Any], bad: Callable[[str, str], ConfigError]) -> str:
    """``metrics: 127.0.0.1:9465``: where the Prometheus endpoint listens ('' = none)."""
    value = raw.get("metrics") or ""
    if not isinstance(value, str):
        raise bad("metrics", "host:port, e.g. 127.0.0.1:9465")
    if value:
        try:
            parse_address(value)
        except UsageError as exc:
            raise bad("metrics", str(exc)) from None
    return value


def _with_track_dir(policy: ContentPolicy, vrrp: VrrpSettings | None) -> ContentPolicy:
    """The yield files' folder is one keepalived's track files may name."""
    if vrrp is None:
        return policy
    return dataclasses.replace(policy, track_dirs=policy.track_dirs | {vrrp.track_dir})


def _vrrp(
    raw: dict[str, Any], beacons: dict[str, Any], bad: Callable[[str, str], ConfigError]
) -> VrrpSettings | None:
    """``vrrp``: the yield files; the vrrp beacon then reports ``yielded`` from them."""
    try:
        settings: VrrpSettings | None = _section(raw, "vrrp", VrrpSettings, bad)
    except (ValueError, SchemaError) as exc:
        raise bad("vrrp", str(exc)) from None
    if settings is not None and "vrrp" in beacons:
        beacons["vrrp"].setdefault("track_dir", settings.track_dir)
    services = raw.get("services") or {}
    for name in settings.watch if settings is not None else ():
        spec = services.get(name) if isinstance(services, dict) else None
        if not isinstance(spec, dict) or not spec.get("pidfile"):
            raise bad("vrrp", f"watch: {name!r} needs a pidfile in services.{name}")
    for vip in beacon_vips(beacons):
        try:
            ipaddress.ip_address(vip)
        except ValueError:
            raise bad("beacons", f"vrrp: {vip!r} is not an IP address") from None
    return settings


def beacon_vips(beacons: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The VIP addresses of the vrrp beacon's instances (a prefix length dropped)."""
    instances = (beacons.get("vrrp") or {}).get("instances") or {}
    return [
        str(v).split("/")[0]
        for spec in instances.values()
        if isinstance(spec, dict)
        for v in spec.get("vips") or []
    ]


def _number(
    raw: dict[str, Any],
    key: str,
    default: float,
    bounds: tuple[float, float],
    bad: Callable[[str, str], ConfigError],
) -> float:
    """A number within ``bounds`` (``interval: fast`` or ``command_timeout: 1e9`` refused)."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(key, f"must be a number, got {value!r}")
    if not bounds[0] <= value <= bounds[1]:
        raise bad(key, f"must be from {bounds[0]:g} to {bounds[1]:g}, got {value:g}")
    return float(value)


def _supervision(
    raw: Any, services: set[str], bad: Callable[[str, str], ConfigError]
) -> SupervisionPolicy | None:
    """``supervision``: which services the minion keeps running, and how hard it tries."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad("supervision", "must be a mapping")
    try:
        return SupervisionPolicy.parse(raw, services)
    except SchemaError as exc:
        raise bad("supervision", f"{exc.field} {exc.reason}".strip()) from None


def _agent(
    raw: Any, beacons: Mapping[str, Any], bad: Callable[[str, str], ConfigError]
) -> AgentPolicy | None:
    """``health_agent``: answers from the galera beacon, so that beacon must be configured."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad("health_agent", "must be a mapping")
    if "galera" not in beacons:
        raise bad("health_agent", "answers from the galera beacon: configure beacons.galera")
    try:
        return AgentPolicy.parse(raw)
    except SchemaError as exc:
        raise bad("health_agent", f"{exc.field} {exc.reason}".strip()) from None


def load_config(path: Path | None, minion_id: str | None) -> MinionConfig:
    """Read minion.yaml (optional when ``--id`` is given)."""
    if path is None:
        if not minion_id:
            raise ConfigError("give --id or --config minion.yaml")
        return parse_config("{}", "<defaults>", minion_id=minion_id)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    return parse_config(text, str(path), minion_id=minion_id)
