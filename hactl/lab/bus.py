"""The lab's bus: identities (one per node, the masters, a lab admin and operator) and the
three-server NATS cluster with auth, TLS and authenticated routes; partitions and reloads."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hactl.auth import store
from hactl.lab import daemons as d
from hactl.lab import deploydoc
from hactl.lab.net import exec_argv, ip

if TYPE_CHECKING:
    from hactl.lab.model import Lab

NATS_SERVER = str(Path(sys.executable).parent / "nats-server")
LAB_ADMIN = "lab-admin"
LAB_OPERATOR = "lab-operator"
#: master identities: the lab's master and the extra ones tests start (start_master)
LAB_MASTERS = ("master", "master-b", "master-c")


def make_auth(lab: Lab) -> None:
    """The site's identities and CA by docs/deploy.md's own block (``lab: auth``: the three
    controllers, ``master``, the admin ``alice``; one server certificate for the controllers'
    addresses), then what only the lab needs: its other masters, its admin and operator, and
    nodes beyond the guide's three."""
    if (lab.auth_dir / "identities.json").exists():
        return
    deploydoc.run("auth", {"HACTL_AUTH": str(lab.auth_dir)}, net=lab.net)
    auth = store.AuthDir(lab.auth_dir)
    have = {e.identity.name for e in auth.entries()}
    for name in LAB_MASTERS:
        if name not in have:
            auth.add("master", name)
    for node in lab.net.nodes:
        if node not in have:
            auth.add("minion", node)
    auth.add_person(LAB_ADMIN, "admin")
    auth.add_person(LAB_OPERATOR, "operator")


def _nats_etc(lab: Lab, node: str) -> Path:
    """``node``'s NATS folder: its config, certificate, key and CA (``NATS_ETC`` and
    ``NATS_AT`` of docs/deploy.md's block: the lab copies nothing)."""
    return lab.node_dir(node) / "nats"


def write_nats_configs(lab: Lab) -> None:
    """Every server's whole config by docs/deploy.md's own block (``lab: nats``: ``hactl auth
    export --server-config`` from the auth directory), one run per node; again after every
    change of the auth directory, as the guide says (the users are inline)."""
    net = lab.net
    for n in net.nodes:
        folder = _nats_etc(lab, n)
        deploydoc.run(
            "nats",
            {
                "ME": net.address(n),
                "NAME": n,
                "PEERS": " ".join(net.address(p) for p in net.nodes),
                "HACTL_AUTH": str(lab.auth_dir),
                "NATS_ETC": str(folder),
                "NATS_AT": str(folder),
                "NATS_STORE": str(folder / "jetstream"),
            },
            net=net,
        )


def _nats_argv(lab: Lab, node: str) -> list[str]:
    """One server of the lab's cluster, on the config docs/deploy.md's block wrote (auth, TLS,
    authenticated mutual-TLS routes, all in a 0600 file: no credential on a command line)."""
    conf = _nats_etc(lab, node) / "nats-server.conf"
    return exec_argv(lab.net, node, [NATS_SERVER, "-c", str(conf)])


def start_cluster(lab: Lab) -> None:
    """Every node's NATS server on the guide's config; waits until each says it is ready."""
    net = lab.net
    write_nats_configs(lab)
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
    """After a change of the lab's auth directory (``hactl auth add-*``, ``revoke``,
    ``rotate``): every config written again by the guide's block, then SIGHUP to every lab
    NATS server (they re-read it without dropping the other connections)."""
    write_nats_configs(lab)
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
