"""``hactl lab``: three real controllers in network namespaces, brought up and torn down.

``up``: guarded network -> a NATS cluster (one server per node, JetStream R3) -> the master
(root namespace, with the shipped reactors) -> a minion and API stand-ins per node ->
``hactl apply states/`` with the lab pillar (which starts HAProxy and keepalived through the
minions) -> Galera (bootstrap, then joiners one by one) -> RabbitMQ (3 nodes, classic-config
peer discovery). Everything started is recorded in ``<dir>/lab.json`` by pid; ``down`` ends
exactly those, then whatever is still inside the lab's own namespaces, then the namespaces,
routes and files.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from hactl.auth.store import server_pem, write_secret
from hactl.data import states_dir
from hactl.lab import daemons as d
from hactl.lab import datastores as stores
from hactl.lab import deploydoc
from hactl.lab.bus import make_auth, start_cluster
from hactl.lab.config import minion_yaml, pillar, site_etc, standin_argv
from hactl.lab.datastores import start_rabbit
from hactl.lab.masters import HACTL, master_argv, rules_dir, start_master, stop_master
from hactl.lab.model import COMPONENTS, Lab
from hactl.lab.net import LabError, LabNet, exec_argv, ip
from hactl.lab.net import up as net_up
from hactl.lab.preflight import preflight, reachable_by_daemons
from hactl.lab.reclaim import reclaim
from hactl.lab.teardown import teardown


def _step(lab: Lab, name: str, start: float, say: Any) -> None:
    lab.timings[name] = round(time.monotonic() - start, 2)
    lab.save()
    say(f"{name}: {lab.timings[name]:.2f} s")


def _prepare(folder: Path, net: LabNet, comps: set[str], say: Any) -> None:
    """Everything a lab needs before it is built: the daemons, no lab left over by a dead run,
    a free folder and namespaces."""
    preflight(comps)
    reclaim(say)
    if comps & {"galera", "rabbitmq"}:
        reachable_by_daemons(folder)
    if (folder / "lab.json").exists():
        raise LabError(f"a lab is already recorded in {folder}: hactl lab down --dir {folder}")
    existing = set(ip("netns", "list", check=False).stdout.split())
    if clash := sorted(existing & set(net.namespaces())):  # someone else's: never touch them
        raise LabError(f"namespaces already exist: {', '.join(clash)} (hactl lab down?)")
    if (folder / "master.log").exists():
        # what a failed `up` kept to say why: its logs and NATS stores would fool this one
        # (an old master_ready line, streams of other keys)
        say(f"  removing what an earlier failed lab left in {folder}")
        for n in net.nodes:
            d.datadir_unmount(folder / n)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)


def up(
    folder: Path,
    nodes: int = 3,
    components: set[str] | None = None,
    subnet: str = "10.99.0",
    prefix: str = "hlab",
    say: Any = print,
    supervise: bool = False,
    fast_path: bool = True,
    galera_profile: str = "lan",
    resync: float = 30.0,
    ephemeral: bool = True,
) -> Lab:
    """Bring the whole lab up; on failure everything started so far is torn down. With
    ``supervise`` the minions restart a dead HAProxy or keepalived themselves. ``ephemeral``:
    this process takes the lab down itself (tests, benchmarks, the demo); the CLI's ``lab up``
    leaves it running. A lab an earlier run left over is taken down first (hactl/lab/reclaim.py)."""
    comps = set(components or COMPONENTS)
    if "galera" not in comps:  # Keystone's database is on Galera
        comps.discard("keystone")
    net = LabNet(prefix, subnet, tuple(f"ctl{i}" for i in range(1, nodes + 1)))
    _prepare(folder, net, comps, say)
    lab = Lab(
        folder,
        net,
        comps,
        supervise=supervise,
        fast_path=fast_path,
        galera_profile=galera_profile,
        resync=resync,
    )
    t0 = time.monotonic()
    try:
        net_up(net, ephemeral=ephemeral, folder=folder)
        lab.save()
        stores.mount_datadirs(lab)
        _step(lab, "network (guard route, hub bridge, namespaces)", t0, say)
        t = time.monotonic()
        make_auth(lab)
        start_cluster(lab)
        _step(lab, "NATS cluster (3 servers, JetStream)", t, say)
        t = time.monotonic()
        if "rabbitmq" in comps:  # booting while MariaDB installs and hactl starts
            stores.install_rabbitmq(lab)
        if "galera" in comps:
            stores.install_galera(lab)
            _step(lab, "MariaDB as its package leaves it (standalone)", t, say)
        t = time.monotonic()
        _hactl(lab)
        _step(lab, "master, minions, API stand-ins", t, say)
        if "rabbitmq" in comps:
            t = time.monotonic()
            stores.wait_installed_brokers(lab)
            _step(lab, "RabbitMQ as its package leaves it (standalone, booted)", t, say)
        t = time.monotonic()
        _apply(lab, say)  # the brokers' files come in its roll, after Galera formed
        formed = (
            " + Galera formed (writer bootstraps, the others join)" if "galera" in comps else ""
        )
        _step(lab, f"hactl apply (HAProxy + keepalived started by the minions{formed})", t, say)
        t = time.monotonic()
        if "galera" in comps:
            stores.wait_galera(lab)
        if "rabbitmq" in comps:
            stores.wait_brokers(lab)
            _step(lab, "RabbitMQ clustered (each standalone broker replaced by the apply)", t, say)
        if "haproxy" in comps and comps & {"galera", "rabbitmq"}:
            t = time.monotonic()
            stores.backends_up(lab)
            _step(lab, "every Galera and RabbitMQ server UP in every HAProxy", t, say)
        _step(lab, "total", t0, say)
    except BaseException:
        teardown(lab, say=lambda _: None, keep_logs=True)  # the logs say why
        raise
    return lab


def _hactl(lab: Lab) -> None:
    net = lab.net
    # the site's secrets, made by docs/deploy.md's own block; the states deliver them
    deploydoc.run("secrets", {"HACTL_ETC": str(site_etc(lab.dir))})
    # the external VIP's certificate (a site's PKI issues it; the lab is its own CA): clients
    # through the external VIP trust external-ca.crt
    ca, pem = server_pem([net.vip(1)])
    write_secret(lab.dir / "external.pem", pem)
    (lab.dir / "external-ca.crt").write_bytes(ca)
    ca, pem = server_pem([net.vip(0), *(net.address(n) for n in net.nodes)])
    write_secret(lab.dir / "internal.pem", pem)
    (lab.dir / "internal-ca.crt").write_bytes(ca)
    (lab.dir / "lab-pillar.yaml").write_text(
        pillar(net, lab.dir, lab.components, lab.galera_profile)
    )
    env = lab.cli_env("master")
    master = master_argv(lab)
    lab.pids["master"] = d.spawn(master, lab.dir / "master.log", env)
    d.wait_for(lambda: "master_ready" in d.read_log(lab.dir / "master.log"), 60, "the master")
    for n in net.nodes:
        nd = lab.node_dir(n)
        for sub in ("etc", "run"):
            (nd / sub).mkdir(parents=True, exist_ok=True)
        (nd / "minion.yaml").write_text(
            minion_yaml(net, lab.dir, n, lab.components, lab.supervise, lab.fast_path, lab.resync)
        )
        start_minion(lab, n)
        start_standin(lab, n)
    lab.save()  # the first apply's block pings the master and every minion first


def start_minion(lab: Lab, node: str, env: dict[str, str] | None = None) -> None:
    """Start ``node``'s minion inside its namespace (its minion.yaml already written);
    ``env`` adds to its environment (a test's preloaded fake clock)."""
    nd = lab.node_dir(node)
    argv = [HACTL, "--nats", lab.nats_url, "--log-format", "json", "minion"]
    argv += ["--config", str(nd / "minion.yaml")]
    lab.pids[f"minion:{node}"] = d.spawn(
        exec_argv(lab.net, node, argv), nd / "minion.log", {**lab.cli_env(node), **(env or {})}
    )


def stop_minion(lab: Lab, node: str) -> None:
    """Stop ``node``'s minion (SIGTERM, as its unit's stop does) and wait until it is gone;
    the daemons it started run on."""
    pid = lab.pids.get(f"minion:{node}")
    if pid and d.alive(pid):
        os.kill(pid, signal.SIGTERM)
        d.wait_for(lambda: not d.alive(pid), 20, f"{node}'s minion stopped")


def set_supervision(lab: Lab, on: bool, say: Any = print) -> None:
    """Turn the minions' supervision on or off in place: each minion.yaml rewritten and its
    minion restarted, one node at a time (the daemons it started run on); each answers a
    ping before the next. What a site does when it changes minion.yaml, and ~90 s less than
    a lab built again."""
    start = time.monotonic()
    lab.supervise = on
    for n in lab.net.nodes:
        (lab.node_dir(n) / "minion.yaml").write_text(
            minion_yaml(lab.net, lab.dir, n, lab.components, on, lab.fast_path, lab.resync)
        )
        stop_minion(lab, n)
        start_minion(lab, n)
        lab.save()
        _ping(lab, n)
    _step(lab, f"supervision {'on' if on else 'off'} (minions restarted)", start, say)


def _ping(lab: Lab, node: str) -> None:
    res = subprocess.run(
        [HACTL, "--nats", lab.nats_url, "ping", node, "--wait", "30"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=lab.cli_env(),
    )
    if res.returncode != 0:
        raise LabError(f"minion {node} does not answer: {res.stderr.strip()}")


def start_standin(lab: Lab, node: str) -> None:
    """Start ``node``'s API stand-in through the launcher its minion's ``api`` service uses
    (pid file included)."""
    address = lab.net.address(node)
    stand = exec_argv(lab.net, node, standin_argv(lab.dir, node, address, lab.components))
    subprocess.run(stand, check=True, timeout=30, capture_output=True)
    pidfile = lab.node_dir(node) / "run/standin.pid"
    d.wait_for(lambda: d.pid_from(pidfile), 10, f"the API stand-in on {node}")
    lab.pids[f"standin:{node}"] = d.pid_from(pidfile) or 0


def _apply(lab: Lab, say: Any) -> None:
    """docs/deploy.md's first apply, as written (``lab: first-apply``: pings, the test apply,
    the apply, the status), as the lab's admin, on the lab's state tree and pillar."""
    env = lab.cli_env()
    deploydoc.run(
        "first-apply",
        {
            **{k: env[k] for k in ("HACTL_NATS", "HACTL_CREDS", "HACTL_TLS_CA")},
            "HACTL_STATES": str(states_dir()),
            "HACTL_PILLAR": str(lab.dir / "lab-pillar.yaml"),
            "CONTROLLERS": " ".join(lab.net.nodes),
        },
        net=lab.net,
        timeout=600,
        log=lab.dir / "apply.log",
        trace=True,  # each command's start time in apply.log (the block holds no secret)
    )
    d.wait_for(lambda: _vip_holders(lab), 15, "a VIP holder")


def _vip_holders(lab: Lab, vip_index: int = 0) -> list[str]:
    vip = lab.net.vip(vip_index)

    def has(n: str) -> bool:
        return f" {vip}/" in ip("-n", lab.net.ns(n), "-o", "-4", "addr", "show", check=False).stdout

    return [n for n in lab.net.nodes if has(n)]


def holders(lab: Lab) -> dict[str, list[str]]:
    """VIP -> nodes holding it right now (from each namespace's addresses)."""
    return {lab.net.vip(i): _vip_holders(lab, i) for i in (0, 1)}


# the lab's masters live in hactl/lab/masters.py, its data tier in hactl/lab/datastores.py;
# tests and the CLI reach them through here
__all__ = [
    "COMPONENTS",
    "HACTL",
    "Lab",
    "holders",
    "rules_dir",
    "set_supervision",
    "start_master",
    "start_rabbit",
    "stop_master",
    "stop_minion",
    "teardown",
    "up",
]
