"""What the lab writes before anything starts: the lab pillar and each node's minion.yaml."""

from __future__ import annotations

from pathlib import Path

from hactl.lab.daemons import API_PORTS
from hactl.lab.net import LabNet

VI_INTERNAL, VI_EXTERNAL = "VI_INTERNAL", "VI_EXTERNAL"


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
        "galera_cnf": f"{base}/etc/galera.cnf",
        "rabbitmq_conf": f"{base}/etc/rabbitmq.conf",
        "rabbitmq_definitions": f"{base}/etc/definitions.json",
        "sysctl_conf": f"{base}/etc/sysctl.conf",
    }


def pillar(net: LabNet, lab: Path, components: set[str]) -> str:
    """The lab pillar (merged over the shipped one): nodes, VIPs, paths, lab-sized daemons."""
    roles = ["api", *sorted(components)]
    role_list = ", ".join(roles)
    nodes = "\n".join(
        f"  {n}: {{address: {net.address(n)}, priority: {150 - 50 * i}, roles: [{role_list}]}}"
        for i, n in enumerate(net.nodes)
    )
    p = "\n".join(f"  {k}: {v}" for k, v in paths(lab).items())
    g = f"{lab}/{{id}}/mysql"
    tmp = f"{g}/" + "tmp"  # the node's own tmpdir, not /tmp
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
  stats: {{password: {{secret: {{file: {lab}/stats.pw}}}}}}
  check: {{inter: 1s, fall: 2, rise: 2}}
keepalived: {{advert_int: 0.2, check_interval: 1, check_weight: 110}}
galera:
  writer: {net.nodes[0]}
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
    wsrep_provider_options: '"gcache.size=64M"'
rabbitmq:
  manage_service: false
  users:
    - {{name: hactl-monitor, password: {{secret: {{file: {lab}/rabbit-monitor.pw}}}},
       tags: [monitoring]}}
    - {{name: openstack, password: {{secret: {{file: {lab}/rabbit-openstack.pw}}}}, configure: ".*",
       write: ".*", read: ".*", tags: [administrator]}}
  options: !replace
    loopback_users: none
    log.console: "true"
    log.file: "false"
    vm_memory_high_watermark.absolute: 256MiB
    disk_free_limit.absolute: 50MB
    net_ticktime: "10"
"""


AGENT_PORT = 9200  # the pillar's haproxy.agent_port (states/pillar/site.yaml)


def minion_yaml(
    net: LabNet, lab: Path, node: str, components: set[str], supervise: bool = False
) -> str:
    """One node's minion.yaml: its beacons, its services (no systemd in the lab)."""
    d = lab / node
    run = d / "run"
    cfg, pid = d / "etc" / "haproxy.cfg", run / "haproxy.pid"
    kconf = d / "etc" / "keepalived.conf"
    addr = net.address(node)
    endpoints = ", ".join(f"{{name: api{p}, url: 'tcp://{addr}:{p}'}}" for p in (5000, 8774, 9696))
    beacons = [
        f"  vrrp: {{fifo: {run}/keepalived.fifo, interval: 1, instances: "
        f"{{{VI_INTERNAL}: {{vips: [{net.vip(0)}]}}, {VI_EXTERNAL}: {{vips: [{net.vip(1)}]}}}}}}",
        f"  haproxy: {{socket: {run}/haproxy.sock, interval: 0.5}}",
        f"  service: {{endpoints: [{endpoints}], interval: 2}}",
    ]
    if "galera" in components:
        beacons.append(
            f"  galera: {{socket: {d}/mysql/mysqld.sock, datadir: {d}/mysql/data, interval: 0.3}}"
        )
    if "rabbitmq" in components:
        pw = lab / "rabbit-monitor.pw"
        beacons.append(
            f"  rabbitmq: {{node: rabbit@{node}, amqp: '{addr}:5672', interval: 0.3, "
            f"timeout: 0.5, user: hactl-monitor, password_file: {pw}}}"
        )
    galera = ""
    if "galera" in components:
        galera = (
            f"galera: {{defaults_file: {d}/etc/galera.cnf, datadir: {d}/mysql/data, "
            f"socket: {d}/mysql/mysqld.sock, pid_file: {d}/mysql/mysqld.pid}}\n"
            f"health_agent: {{address: {addr}, port: {AGENT_PORT}}}\n"
        )
    supervision = (
        "supervision: {services: [haproxy, keepalived], threshold: 5, window: 60, interval: 0.5}\n"
        if supervise
        else ""
    )
    return f"""# written by hactl lab up
id: {node}
roles: [controller]
heartbeat_interval: 2
resync_interval: 30
allowed_roots: [{d}]
check_commands: [haproxy, keepalived]
haproxy_socket: {run}/haproxy.sock
command_timeout: 60
services:
  haproxy:
    start: [haproxy, -D, -f, {cfg}, -p, {pid}]
    reload: [haproxy, -D, -f, {cfg}, -p, {pid}, -sf, "{{pid}}"]
    pidfile: {pid}
  keepalived:
    start: [keepalived, -D, -f, {kconf}, -p, {run}/keepalived.pid, -r, {run}/vrrp.pid,
            -c, {run}/checkers.pid]
    reload: [kill, -HUP, "{{pid}}"]
    pidfile: {run}/keepalived.pid
{galera}{supervision}beacons:
{chr(10).join(beacons)}
"""


__all__ = ["API_PORTS", "minion_yaml", "paths", "pillar"]
