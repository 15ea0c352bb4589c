"""The lab's data tier: each node's Galera datadir on a filesystem of its own, MariaDB as its
package leaves it (hactl's states form the cluster), RabbitMQ (3 nodes, classic-config peer
discovery), and the wait until HAProxy's checks see them all. ``hactl/lab/lab.py`` calls
these in order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hactl.lab import daemons as d
from hactl.lab.net import exec_argv
from hactl.minion.executors.rabbitmq_member import cluster_nodes

if TYPE_CHECKING:
    from hactl.lab.model import Lab

RABBITMQ_SERVER = f"{d.RABBITMQ_BIN}/rabbitmq-server"


def mount_datadirs(lab: Lab) -> None:
    """Each node's Galera datadir on its own filesystem, before anything runs in the
    namespaces: a process started by ``ip netns exec`` gets its own mount namespace and never
    sees a mount made after it started (the minions read grastate.dat there)."""
    if "galera" in lab.components:
        for n in lab.net.nodes:
            d.datadir_mount(lab.node_dir(n))


def install_galera(lab: Lab) -> None:
    """Every controller as the MariaDB package leaves it: a fresh datadir and a standalone
    server running. Nothing more: the galera config, stopping that server and forming the
    cluster (the writer bootstraps, the others join) are the shipped states' (``galera_cnf``,
    ``galera_member``), on the first ``hactl apply``."""
    net = lab.net
    for n in net.nodes:
        d.galera_init(lab.node_dir(n))
    for n in net.nodes:
        d.galera_standalone(net, n, lab.node_dir(n))
    for n in net.nodes:
        sock = lab.node_dir(n) / "mysql/mysqld.sock"
        d.wait_for(lambda s=sock: d.galera_state(s) is not None, 60, f"MariaDB on {n}")


def wait_galera(lab: Lab) -> None:
    """Until every member is Synced in a Primary component (the apply waited for it too)."""
    for n in lab.net.nodes:
        sock = lab.node_dir(n) / "mysql/mysqld.sock"
        d.wait_for(lambda s=sock: d.galera_state(s) == ("Primary", "Synced"), 60, f"Galera on {n}")


def _spawn_broker(lab: Lab, node: str) -> None:
    """One RabbitMQ node's launcher in its namespace, recorded; output to its console log."""
    env = d.rabbit_env(lab.dir, node, lab.net.address(node))
    argv = exec_argv(lab.net, node, [RABBITMQ_SERVER])
    log = lab.node_dir(node) / "rabbit/console.log"
    lab.pids[f"rabbit-launcher:{node}"] = d.spawn(argv, log, env)


def install_rabbitmq(lab: Lab) -> None:
    """Every controller as the rabbitmq-server package leaves it: its folders, and a
    standalone broker started at once with the package's defaults -- no rabbitmq.conf, no
    plugins, an Erlang cookie it makes itself, a database of itself alone. Nothing more:
    the site's cookie and config, stopping that broker and clustering are the shipped
    states' (``rabbitmq_cookie``, ``rabbitmq_conf``, ``rabbitmq_member``), on the first
    ``hactl apply``."""
    for n in lab.net.nodes:
        d.rabbit_prepare(lab.dir, n)
    for n in lab.net.nodes:
        _spawn_broker(lab, n)
    lab.save()


def wait_installed_brokers(lab: Lab) -> None:
    """Until every standalone broker :func:`install_rabbitmq` started logged its startup."""
    for n in lab.net.nodes:
        log = lab.node_dir(n) / "rabbit/console.log"
        d.wait_for(lambda p=log: "Server startup complete" in d.read_log(p), 90, f"RabbitMQ on {n}")


def wait_brokers(lab: Lab) -> None:
    """Until every broker runs in one cluster of every node: its database names them all
    (the apply's roll started them, each after the gate held for the one before)."""
    want = {f"rabbit@{n}" for n in lab.net.nodes}

    def clustered(node: str) -> bool:
        nodes = cluster_nodes(lab.node_dir(node) / "rabbit/mnesia" / f"rabbit@{node}")
        pid = d.pid_from(lab.node_dir(node) / "rabbit/rabbit.pid")
        return set(nodes or ()) == want and d.alive(pid)

    for n in lab.net.nodes:
        d.wait_for(lambda n=n: clustered(n), 90, f"RabbitMQ on {n} clustered")


def start_rabbit(lab: Lab, node: str) -> None:
    """(Re)start one RabbitMQ node (after a kill); waits for its startup line."""
    log = lab.node_dir(node) / "rabbit/console.log"
    mark = len(d.read_log(log))
    _spawn_broker(lab, node)
    lab.save()
    d.wait_for(
        lambda: "Server startup complete" in d.read_log(log)[mark:], 90, f"RabbitMQ on {node}"
    )


def backends_up(lab: Lab) -> None:
    """Ready for clients: HAProxy's checks (rise 2 x 1 s) see the daemons that just started, so
    a client connecting at once is not put on two brokers out of three."""
    wanted = [b for b in ("galera", "rabbitmq") if b in lab.components]

    def all_up() -> bool:
        for n in lab.net.nodes:
            st = d.haproxy_servers(lab.node_dir(n) / "run/haproxy.sock")
            mine = [v for k, v in st.items() if k.split("/", 1)[0] in wanted]
            if len(mine) != len(wanted) * len(lab.net.nodes) or set(mine) != {"UP"}:
                return False
        return True

    d.wait_for(all_up, 60, "every galera/rabbitmq server UP in every HAProxy")
