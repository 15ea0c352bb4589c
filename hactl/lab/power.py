"""A lab node's power: off (every process killed, its links dark) and on again (a boot).

Killing the processes of a namespace is not a power-off on its own: the namespace keeps its
addresses, so its kernel would go on answering ARP for a VIP keepalived left behind and
resetting connections to it -- a dead node does neither. Off therefore also takes the node's
two links down on the hub side (the node's NICs lose carrier; its neighbours hear nothing,
as from a node without power). On is a boot: the VIPs are not configured any more (a booted
node has only its own addresses), the links come up, and what an init system would start
is started -- the node's NATS server, its minion, its API stand-in, and the daemons a
controller enables at boot (HAProxy, keepalived, the broker: their ``start`` commands from
the node's minion.yaml, as systemd would run their units; the minion's supervision keeps
them running from then on). mariadbd is not enabled at boot: it waits for hactl's
Galera-aware rejoin, as after any crash.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import yaml

from hactl.lab import daemons as d
from hactl.lab.bus import start_nats
from hactl.lab.lab import start_minion, start_standin
from hactl.lab.model import Lab
from hactl.lab.net import exec_argv, ip

#: what a controller starts at boot (its enabled units): minion.yaml service, lab component
BOOT = (
    ("haproxy", "haproxy"),
    ("keepalived", "keepalived"),
    ("rabbitmq", "rabbitmq"),
    ("keystone", "keystone"),
)


def _hub_ends(node: str) -> tuple[str, str]:
    return f"v-{node}"[:15], f"x-{node}"[:15]


def power_off(lab: Lab, node: str) -> int:
    """SIGKILL every process in ``node``'s namespace and take its links down; how many
    processes were killed."""
    for end in _hub_ends(node):
        ip("-n", lab.net.hub, "link", "set", end, "down")
    pids = [int(p) for p in ip("netns", "pids", lab.net.ns(node), check=False).stdout.split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # gone by itself meanwhile
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def power_on(lab: Lab, node: str) -> None:
    """Boot ``node`` again: no VIP left configured, links up, its NATS server, minion and API
    stand-in started (supervision, when on, starts the rest)."""
    ns = lab.net.ns(node)
    d.wait_for(
        lambda: not ip("netns", "pids", ns, check=False).stdout.split(), 10, f"{node} powered off"
    )
    for i, dev in ((0, "eth0"), (1, "eth1")):
        shown = ip("-n", ns, "-o", "-4", "addr", "show", "dev", dev, check=False).stdout.split()
        for cidr in (w for w in shown if w.startswith(f"{lab.net.vip(i)}/")):
            ip("-n", ns, "addr", "del", cidr, "dev", dev)
    for end in _hub_ends(node):
        ip("-n", lab.net.hub, "link", "set", end, "up")
    if f"nats:{node}" in lab.pids:
        start_nats(lab, node)
    start_minion(lab, node)
    start_standin(lab, node)
    services = (yaml.safe_load((lab.node_dir(node) / "minion.yaml").read_text()) or {}).get(
        "services"
    ) or {}
    for name, component in BOOT:
        argv = (services.get(name) or {}).get("start")
        if component in lab.components and argv:
            subprocess.run(
                exec_argv(lab.net, node, [str(a) for a in argv]),
                timeout=30,
                capture_output=True,
                check=False,
            )
    lab.save()
