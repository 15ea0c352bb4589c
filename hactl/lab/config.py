"""What the lab writes before anything starts: the lab pillar and each node's minion.yaml."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from hactl.lab.daemons import API_PORTS, RABBITMQ_BIN, rabbit_env
from hactl.lab.net import LabNet

VI_INTERNAL, VI_EXTERNAL = "VI_INTERNAL", "VI_EXTERNAL"


def site_etc(lab: Path) -> Path:
    """The lab site's ``/etc/hactl``: the secrets docs/deploy.md makes (``HACTL_ETC``)."""
    return lab / "etc-hactl"


def paths(lab: Path) -> dict[str, str]:
    """Per-node paths (``{id}`` = node): what the shipped states write and the daemons use."""
    base = f"{lab}/{{id}}"
    return {
        "haproxy_cfg": f"{base}/etc/haproxy.cfg",
        "haproxy_pid": f"{base}/run/haproxy.pid",
        "haproxy_socket": f"{base}/run/haproxy.sock",
        "haproxy_state": f"{base}/run/haproxy.state",
        "keepalived_conf": f"{base}/etc/keepalived.conf",
        "keepalived_fifo": f"{base}/run/keepalived.fifo",
        "vrrp_track_dir": f"{base}/run",
        "galera_cnf": f"{base}/etc/galera.cnf",
        "rabbitmq_conf": f"{base}/etc/rabbitmq.conf",
        "rabbitmq_definitions": f"{base}/etc/definitions.json",
        "rabbitmq_enabled_plugins": f"{base}/rabbit/enabled_plugins",
        "rabbitmq_cookie": f"{base}/rabbit/home/.erlang.cookie",
        "sysctl_conf": f"{base}/etc/sysctl.conf",
        "clients_conf": f"{base}/etc/openstack-clients.conf",
        "haproxy_external_pem": f"{base}/etc/tls/external.pem",
        "galera_tls_pem": f"{base}/etc/tls/galera.pem",
        "galera_tls_ca": f"{base}/etc/tls/galera-ca.pem",
        "rabbitmq_tls_pem": f"{base}/etc/tls/rabbitmq.pem",
        "rabbitmq_tls_ca": f"{base}/etc/tls/rabbitmq-ca.pem",
        "keystone_conf": f"{base}/etc/keystone.conf",
        "keystone_fernet_keys": f"{base}/keystone/fernet-keys",
    }


def galera_provider(profile: str) -> tuple[str, dict[str, str]]:
    """``lan`` / ``default``, optionally with provider options a benchmark tries on top of it:
    ``lan:evs.suspect_timeout=PT0.6S,evs.inactive_timeout=PT5S`` -> (``lan``, {...})."""
    name, _, extra = profile.partition(":")
    options = {}
    for pair in filter(None, extra.split(",")):
        key, eq, value = pair.partition("=")
        if not eq or not key.strip() or not value.strip() or any(c in pair for c in ";{}'\"\n"):
            raise ValueError(f"bad galera provider option {pair!r} (key=value)")
        options[key.strip()] = value.strip()
    return name, options


def pillar(net: LabNet, lab: Path, components: set[str], galera_profile: str = "lan") -> str:
    """The lab pillar (merged over the shipped one): nodes, VIPs, paths, lab-sized daemons."""
    profile, extra = galera_provider(galera_profile)
    provider = ", ".join(f"{k}: {v}" for k, v in {"gcache.size": "64M", **extra}.items())
    roles = ["api", *sorted(components)]
    role_list = ", ".join(roles)
    nodes = "\n".join(
        f"  {n}: {{address: {net.address(n)}, priority: {150 - 50 * i}, roles: [{role_list}]}}"
        for i, n in enumerate(net.nodes)
    )
    p = "\n".join(f"  {k}: {v}" for k, v in paths(lab).items())
    g = f"{lab}/{{id}}/mysql"
    etc = site_etc(lab)  # the secrets docs/deploy.md's block made
    tmp = f"{g}/" + "tmp"  # the node's own tmpdir, not /tmp
    # always: the shipped pillar resolves Keystone's secrets whether or not a node runs it
    keystone = _keystone(etc)
    return f"""# written by hactl lab up
nodes: !replace
{nodes}
vips: !replace
  internal: {{address: {net.vip(0)}, prefix: 25, interface: eth0, virtual_router_id: 51}}
  external: {{address: {net.vip(1)}, prefix: 25, interface: eth1, virtual_router_id: 52}}
paths:
{p}
manage_services: true
haproxy:
  stats: {{password: !replace {{secret: {{file: {etc}/haproxy-stats.pw}}}}}}
  external_tls: {{pem: !replace {{secret: {{file: {lab}/external.pem}}}}}}
  check: {{inter: 1s, fastinter: 250ms, downinter: 500ms, fall: 2, rise: 2}}
  agent_inter: 500ms  # the lab's galera beacon reports every 0.3 s
# TLS for Galera's and RabbitMQ's clients, offered beside plain (the workload stays plain)
internal_tls: {{enabled: true, pem: {{secret: {{file: {lab}/internal.pem}}}},
               ca: {{secret: {{file: {lab}/internal-ca.crt}}}}}}
clients: {{tls: false}}
keepalived: {{advert_int: 0.2, check_interval: 1, check_weight: 110}}
galera:
  writer: {net.nodes[0]}
  profile: {profile}
  provider_options: {{{provider}}}
  options: !replace
    user: mysql
    datadir: {g}/data
    tmpdir: {tmp}
    socket: {g}/mysqld.sock
    pid-file: {g}/mysqld.pid
    log-error: {g}/error.log
    skip-name-resolve: "1"
    innodb_buffer_pool_size: 64M
    innodb_log_file_size: 32M
    performance_schema: "OFF"
rabbitmq:
  service: rabbitmq  # the minion's name for the lab's broker (minion.yaml services)
  cookie: !replace {{secret: {{file: {etc}/rabbitmq-cookie}}}}
  file_owner: root  # the lab's brokers run as root
  users:
    - {{name: hactl-monitor, password: {{secret: {{file: {etc}/rabbitmq-monitor.pw}}}},
       tags: [monitoring]}}
    - {{name: openstack, password: {{secret: {{file: {etc}/rabbitmq-openstack.pw}}}},
       configure: ".*", write: ".*", read: ".*", tags: [administrator]}}
  options: !replace
    loopback_users: none
    log.console: "true"
    log.file: "false"
    vm_memory_high_watermark.absolute: 256MiB
    disk_free_limit.absolute: 50MB
{keystone}# a stand-in singleton (hactl/lab/singleton_standin.py): on exactly one node at a time
singletons:
  - {{name: {SINGLETON}, service: {SINGLETON}, enabled: true, prefer: [{", ".join(net.nodes)}],
     lease: 5, renew: 0.5, monitor: 0.5, stop_timeout: 1.5, failure_expiry: 20}}
"""


def _keystone(etc: Path) -> str:
    """The lab pillar's keystone section: the secrets docs/deploy.md's block made; the lab's
    Keystones run as root (no keystone user in the namespaces)."""
    # !replace: the site's spec also names an environment variable, which would win over
    # the lab's file (a variable left in the test process's environment once did)
    return f"""keystone:
  database:
    password: !replace {{secret: {{file: {etc}/keystone-db.pw}}}}
  admin_password: !replace {{secret: {{file: {etc}/keystone-admin.pw}}}}
  fernet_keys: !replace {{secret: {{file: {etc}/keystone-fernet-keys}}}}
  file_owner: root
  file_group: root
  # bcrypt's cheapest cost: a token issue costs Keystone ~0.5 s of CPU at the default 12,
  # which on the lab's 2 cores, not the faults, would set the token workload's pace
  options: {{identity: {{password_hash_rounds: 4}}}}
"""


AGENT_PORT = 9200
#: the lab's stand-in singleton (its service, its log: <lab>/<node>/demo-scheduler.log)
SINGLETON = "demo-scheduler"  # the pillar's haproxy.agent_port (states/pillar/site.yaml)


def minion_yaml(
    net: LabNet,
    lab: Path,
    node: str,
    components: set[str],
    supervise: bool = False,
    fast_path: bool = True,
    resync: float = 30.0,
) -> str:
    """One node's minion.yaml: its beacons, its services (no systemd in the lab)."""
    d = lab / node
    run = d / "run"
    cfg, pid = d / "etc" / "haproxy.cfg", run / "haproxy.pid"
    kconf = d / "etc" / "keepalived.conf"
    addr = net.address(node)
    endpoints = ", ".join(f"{{name: api{p}, url: 'tcp://{addr}:{p}'}}" for p in (5000, 8774, 9696))
    beacons = [
        f"  vrrp: {{fifo: {run}/keepalived.fifo, pidfile: {run}/keepalived.pid, interval: 1, "
        "instances: "
        f"{{{VI_INTERNAL}: {{vips: [{net.vip(0)}]}}, {VI_EXTERNAL}: {{vips: [{net.vip(1)}]}}}}}}",
        f"  haproxy: {{socket: {run}/haproxy.sock, interval: 0.5}}",
        f"  service: {{endpoints: [{endpoints}], interval: 2}}",
    ]
    if "galera" in components:
        beacons.append(
            f"  galera: {{socket: {d}/mysql/mysqld.sock, datadir: {d}/mysql/data, interval: 0.3,"
            " timeout: 0.5}"
        )
    if "rabbitmq" in components:
        pw = site_etc(lab) / "rabbitmq-monitor.pw"
        beacons.append(
            f"  rabbitmq: {{node: rabbit@{node}, amqp: '{addr}:5672', interval: 0.3, "
            f"timeout: 0.5, user: hactl-monitor, password_file: {pw}, "
            f"pidfile: {d}/rabbit/rabbit.pid, service: rabbitmq, resume_grace: 5}}"
        )
    galera = ""
    if "galera" in components:
        galera = (
            f"galera: {{defaults_file: {d}/etc/galera.cnf, datadir: {d}/mysql/data, "
            f"socket: {d}/mysql/mysqld.sock, pid_file: {d}/mysql/mysqld.pid}}\n"
            f"health_agent: {{address: {addr}, port: {AGENT_PORT}}}\n"
        )
    if "rabbitmq" in components:  # rabbitmqctl for the minion (forget_node, definitions)
        renv = {
            k: v
            for k, v in rabbit_env(lab, node, addr).items()
            if k.startswith("RABBITMQ_") or k == "HOME"
        }
        galera += (
            f"rabbitmq: {{node: rabbit@{node}, "
            f"rabbitmqctl: [{RABBITMQ_BIN}/rabbitmqctl], "
            f"env: {json.dumps(renv)}}}\n"
        )
    if "keystone" in components:  # keystone-manage for keystone.db (db_sync, bootstrap)
        galera += f"keystone: {{config: {d}/etc/keystone.conf, manage: [keystone-manage]}}\n"
    supervised = [
        "haproxy",
        "keepalived",
        "api",
        *(["rabbitmq"] if "rabbitmq" in components else []),
        *(["keystone"] if "keystone" in components else []),
    ]
    supervision = (
        f"supervision: {{services: [{', '.join(supervised)}], threshold: 5, window: 60, "
        "interval: 0.5}\n"
        if supervise
        else ""
    )
    extra = _foreground_services(lab, node, addr, components)
    return f"""# written by hactl lab up
id: {node}
roles: [controller]
heartbeat_interval: 2
resync_interval: {resync:g}
allowed_roots: [{d}]
check_commands: [haproxy, keepalived]
haproxy_socket: {run}/haproxy.sock
command_timeout: 60
services:
  haproxy:
    start: [haproxy, -D, -f, {cfg}, -p, {pid}]
    reload: [haproxy, -D, -f, {cfg}, -p, {pid}, -sf, "{{pid}}"]
    pidfile: {pid}
    process: [haproxy, -D, -f, {cfg}]  # this node's HAProxy, pid file or not
  keepalived:
    start: [keepalived, -D, -f, {kconf}, -p, {run}/keepalived.pid, -r, {run}/vrrp.pid,
            -c, {run}/checkers.pid]
    reload: [kill, -HUP, "{{pid}}"]
    pidfile: {run}/keepalived.pid
    pidfiles: [{run}/vrrp.pid, {run}/checkers.pid]  # its children: a start waits for them
    process: [keepalived, -f, {kconf}]
{extra}vrrp: {{track_dir: {run}, instances: [{VI_INTERNAL}, {VI_EXTERNAL}], max_seconds: 120,
       watch: [{"haproxy" if fast_path else ""}]}}
{galera}{supervision}singletons: {{dir: {run}/singletons}}
# HAProxy's pid file, sockets and state live in run/, the external VIP's certificate in etc/tls;
# keystone.conf names the node's fernet keys
content_policy: {{read_dirs: [{run}, {d / "etc" / "tls"}], oslo_dirs: [{d / "keystone"}]}}
beacons:
{chr(10).join(beacons)}
"""


def standin_argv(
    lab: Path, node: str, address: str, components: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """The API stand-in of one node, started through the lab's launcher (it returns at once,
    as a service manager's start does), with its pid in ``run/standin.pid``; not on
    Keystone's port when the lab runs the real Keystone."""
    d = lab / node
    ports = [p for p in API_PORTS if not ("keystone" in components and p == KEYSTONE_PORT)]
    return [
        *_launch(d / "standin.log", d / "run" / "standin.pid"),
        sys.executable,
        "-m",
        "hactl.lab.standin",
        "--bind",
        address,
        "--name",
        node,
        *(str(p) for p in ports),
    ]


KEYSTONE_PORT = 5000


def keystone_argv(lab: Path, node: str, address: str) -> list[str]:
    """Debian's Keystone on one node: its WSGI app under uwsgi (as /etc/init.d/keystone runs
    it, sized for the lab), on the node's address, reading the keystone.conf the states write;
    started through the launcher, its pid (uwsgi's master) in ``run/keystone.pid``."""
    d = lab / node
    env = {"OS_KEYSTONE_CONFIG_FILES": f"{d}/etc/keystone.conf"}
    return [
        *_launch(d / "keystone.log", d / "run" / "keystone.pid", env),
        "/usr/bin/uwsgi_python3",
        "--http-socket",
        f"{address}:{KEYSTONE_PORT}",
        "--wsgi-file",
        "/usr/bin/keystone-wsgi-public",
        "--master",
        "--processes",
        "2",
        "--threads",
        "4",
        "--lazy-apps",
        "--die-on-term",
        "--no-orphans",  # workers end with their master (a kill -9 of it leaves no port held)
        "--need-app",
        "--buffer-size",
        "65535",
    ]


def _launch(log: Path, pidfile: Path | None = None, env: dict[str, str] | None = None) -> list[str]:
    pid = ["--pidfile", str(pidfile)] if pidfile else []
    pairs = [a for k, v in sorted((env or {}).items()) for a in ("--env", f"{k}={v}")]
    return [sys.executable, "-m", "hactl.lab.launch", "--log", str(log), *pid, *pairs, "--"]


def _foreground_services(lab: Path, node: str, address: str, components: set[str]) -> str:
    """minion.yaml ``services`` entries for what runs in the foreground: the API stand-in
    (``api``) and the RabbitMQ node (``rabbitmq``), so the minion can start (and supervise)
    them like the daemons that detach themselves."""
    out: dict[str, dict[str, Any]] = {
        "api": {
            "start": standin_argv(lab, node, address, components),
            "pidfile": f"{lab / node}/run/standin.pid",
            "process": [sys.executable, "hactl.lab.standin", "--name", node],
        }
    }
    run = lab / node / "run"
    out[SINGLETON] = {
        "start": [
            *_launch(lab / node / f"{SINGLETON}.out", run / f"{SINGLETON}.pid"),
            sys.executable,
            "-m",
            "hactl.lab.singleton_standin",
            "--log",
            str(lab / node / f"{SINGLETON}.log"),
            "--node",
            node,
        ],
        "pidfile": str(run / f"{SINGLETON}.pid"),
        "stop": ["kill", "-TERM", "{pid}"],
    }
    if "keystone" in components:
        out["keystone"] = {
            "start": keystone_argv(lab, node, address),
            "pidfile": f"{run}/keystone.pid",
            "process": ["/usr/bin/uwsgi_python3", "--http-socket", f"{address}:{KEYSTONE_PORT}"],
            "stop": ["kill", "-TERM", "{pid}"],
        }
    if "rabbitmq" in components:
        env = {
            k: v
            for k, v in rabbit_env(lab, node, address).items()
            if k.startswith("RABBITMQ_") or k == "HOME"
        }
        d = lab / node / "rabbit"
        pairs = [f"{k}={v}" for k, v in sorted(env.items())]

        def ctl(tool: str, command: str) -> str:
            """One of RabbitMQ's CLI tools against this node, as a shell word list."""
            bin_ = f"{RABBITMQ_BIN}/{tool}"
            return shlex.join(["env", *pairs, bin_, "-q", "-n", f"rabbit@{node}", command])

        out["rabbitmq"] = {
            "start": [
                *_launch(d / "console.log", env=env),
                f"{RABBITMQ_BIN}/rabbitmq-server",
            ],
            "pidfile": str(d / "rabbit.pid"),
            # its Erlang VM (a rabbitmqctl's VM has no `-s rabbit boot`); one per namespace
            "process": ["beam.smp", "-s", "rabbit", "boot"],
            # a graceful stop (its Erlang VM leaves the cluster cleanly); a restart without a
            # restart command is this, then start (SIGKILL if it hangs)
            "stop": ["kill", "-TERM", "{pid}"],
            # before a planned stop or restart: maintenance mode (its quorum-queue leaders
            # moved to the others, its clients closed), then its listeners closed at once
            # (stop_app): a client's reconnect is refused and goes to the next broker instead
            # of looping on this one until it is gone (decision 53); its next boot revives it
            "pre_stop": [
                "sh",
                "-c",
                f"{ctl('rabbitmq-upgrade', 'drain')} && {ctl('rabbitmqctl', 'stop_app')}",
            ],
            # its Erlang VM writes the pid file seconds after the start returns: no second
            # copy meanwhile (a second one's failed boot removed the first one's pid file)
            "start_grace": 30,
        }
    lines = []
    for name, spec in out.items():
        lines.append(f"  {name}:")
        lines.append(f"    start: {json.dumps(spec['start'])}")
        if "stop" in spec:
            lines.append(f"    stop: {json.dumps(spec['stop'])}")
        if "pre_stop" in spec:
            lines.append(f"    pre_stop: {json.dumps(spec['pre_stop'])}")
        lines.append(f"    pidfile: {json.dumps(spec['pidfile'])}")
        if "process" in spec:
            lines.append(f"    process: {json.dumps(spec['process'])}")
        if "start_grace" in spec:
            lines.append(f"    start_grace: {spec['start_grace']}")
    return "\n".join(lines) + "\n"


__all__ = ["API_PORTS", "keystone_argv", "minion_yaml", "paths", "pillar", "standin_argv"]
