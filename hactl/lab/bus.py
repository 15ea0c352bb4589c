"""The lab's bus: identities (one per node, the masters, a lab admin and operator) and the
three-server NATS cluster with auth, TLS and authenticated routes; partitions and reloads."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hactl.auth import store
from hactl.auth.store import write_secret
from hactl.bus.embedded import ServerAuth, ServerOptions
from hactl.lab import daemons as d
from hactl.lab.net import exec_argv, ip

if TYPE_CHECKING:
    from hactl.lab.model import Lab

NATS_SERVER = str(Path(sys.executable).parent / "nats-server")
LAB_ADMIN = "lab-admin"
LAB_OPERATOR = "lab-operator"
#: master identities: the lab's master and the extra ones tests start (start_master)
LAB_MASTERS = ("master", "master-b", "master-c")


def make_auth(lab: Lab) -> None:
    """Identities for every node, the masters, a lab admin and a lab operator; one server
    certificate for the three node addresses."""
    net = lab.net
    if not (lab.auth_dir / "identities.json").exists():
        store.init(
            lab.auth_dir,
            nodes=list(net.nodes),
            masters=list(LAB_MASTERS),
            admins=[LAB_ADMIN],
            operators=[LAB_OPERATOR],
            hosts=[*(net.address(n) for n in net.nodes), "127.0.0.1"],
        )


def _nats_argv(lab: Lab, node: str) -> list[str]:
    """One server of the lab's cluster: auth, TLS, authenticated mutual-TLS routes, all in a
    0600 config file (no credential on a command line)."""
    net = lab.net
    options = ServerOptions(
        data_dir=lab.node_dir(node) / "nats",
        auth=ServerAuth(lab.auth_dir),
        host=net.address(node),
        port=4222,
        name=node,
        cluster_port=6222,
        routes=tuple(f"{net.address(n)}:6222" for n in net.nodes),
        cluster_name="hactl-lab",
    )
    options.data_dir.mkdir(parents=True, exist_ok=True)
    conf = options.data_dir / "nats-server.conf"
    write_secret(conf, options.config_text().encode())
    return exec_argv(net, node, [NATS_SERVER, "-c", str(conf)])


def start_cluster(lab: Lab) -> None:
    """Every node's NATS server; waits until each says it is ready."""
    net = lab.net
    for n in net.nodes:
        lab.pids[f"nats:{n}"] = d.spawn(_nats_argv(lab, n), lab.node_dir(n) / "nats.log")
    lab.save()
    for n in net.nodes:
        d.wait_for(
            lambda n=n: "Server is ready" in d.read_log(lab.node_dir(n) / "nats.log"),
            20,
            f"NATS on {n}",
        )


def set_link(lab: Lab, node: str, attached: bool) -> None:
    """Put ``node``'s internal link on the bridge, or take it off (a silent partition: the
    carrier stays up, packets just stop)."""
    ip(
        "-n",
        lab.net.hub,
        "link",
        "set",
        f"v-{node}"[:15],
        *(["master", "br0"] if attached else ["nomaster"]),
    )


def reload_nats(lab: Lab) -> None:
    """SIGHUP every lab NATS server: they re-read the authorization block (after ``hactl auth
    revoke`` or ``rotate`` on the lab's auth directory)."""
    for n in lab.net.nodes:
        pid = lab.pids.get(f"nats:{n}")
        if pid and d.alive(pid):
            os.kill(pid, signal.SIGHUP)


def start_nats(lab: Lab, node: str) -> None:
    """(Re)start one NATS server of the cluster (same store, same routes)."""
    log = lab.node_dir(node) / "nats.log"
    mark = len(d.read_log(log))
    lab.pids[f"nats:{node}"] = d.spawn(_nats_argv(lab, node), log)
    lab.save()
    d.wait_for(lambda: "Server is ready" in d.read_log(log)[mark:], 20, f"NATS on {node}")
