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

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hactl.auth.client import ClientAuth, for_identity
from hactl.data import states_dir
from hactl.lab import daemons as d
from hactl.lab import datastores as stores
from hactl.lab.bus import LAB_ADMIN, make_auth, start_cluster
from hactl.lab.config import minion_yaml, pillar, standin_argv
from hactl.lab.datastores import start_rabbit
from hactl.lab.masters import HACTL, master_argv, rules_dir, start_master, stop_master
from hactl.lab.net import LabError, LabNet, exec_argv, ip
from hactl.lab.net import down as net_down
from hactl.lab.net import up as net_up
from hactl.lab.preflight import preflight, reachable_by_daemons
from hactl.minion.beacons.keepalived_state import JSON_FILE

COMPONENTS = ("haproxy", "keepalived", "galera", "rabbitmq")


@dataclass
class Lab:
    """A lab: where it lives, its network, what it runs (``pids``: name -> pid)."""

    dir: Path
    net: LabNet
    components: set[str]
    pids: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    supervise: bool = False  # minions restart a dead HAProxy/keepalived (minion.yaml supervision)
    #: minions flag HAProxy's death for keepalived at once (minion.yaml vrrp.watch); off: the
    #: keepalived script check alone (a benchmark's baseline)
    fast_path: bool = True
    galera_profile: str = "lan"  # the pillar's galera.profile (a benchmark's baseline: default)
    resync: float = 30.0  # the minions' resync_interval (a report with no change)

    @property
    def nats_url(self) -> str:
        """All three servers, for clients anywhere in the lab (root namespace included)."""
        return ",".join(f"nats://{self.net.address(n)}:4222" for n in self.net.nodes)

    @property
    def auth_dir(self) -> Path:
        """The lab's identities, CA and server certificate (hactl/auth/store.py)."""
        return self.dir / "auth"

    def client_auth(self, name: str = LAB_ADMIN) -> ClientAuth:
        """Credentials of a lab identity (default: the lab's admin)."""
        return for_identity(self.auth_dir, name)

    def cli_env(self, name: str = LAB_ADMIN) -> dict[str, str]:
        """The environment a ``hactl`` command in the lab runs with, as identity ``name``."""
        return {
            **os.environ,
            "HACTL_NATS": self.nats_url,
            "HACTL_CREDS": str(self.auth_dir / "creds" / f"{name}.nk"),
            "HACTL_TLS_CA": str(self.auth_dir / "ca.crt"),
        }

    def node_dir(self, node: str) -> Path:
        """The node's folder."""
        return self.dir / node

    def save(self) -> None:
        """Write lab.json (what ``down``, ``status`` and ``kill`` read)."""
        state = {
            "subnet": self.net.subnet,
            "prefix": self.net.prefix,
            "nodes": list(self.net.nodes),
            "components": sorted(self.components),
            "supervise": self.supervise,
            "fast_path": self.fast_path,
            "galera_profile": self.galera_profile,
            "pids": self.pids,
            "timings": self.timings,
            "nats": self.nats_url,
        }
        tmp = self.dir / "lab.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.dir / "lab.json")

    @classmethod
    def load(cls, folder: Path) -> Lab:
        """The lab recorded in ``folder``; LabError when there is none."""
        try:
            s = json.loads((folder / "lab.json").read_text())
        except (OSError, ValueError):
            raise LabError(f"no lab in {folder} (hactl lab up --dir {folder})") from None
        net = LabNet(s["prefix"], s["subnet"], tuple(s["nodes"]))
        lab = cls(
            folder,
            net,
            set(s["components"]),
            supervise=bool(s.get("supervise")),
            fast_path=bool(s.get("fast_path", True)),
            galera_profile=str(s.get("galera_profile", "lan")),
        )
        lab.pids, lab.timings = dict(s["pids"]), dict(s.get("timings", {}))
        return lab

    def daemon_pid(self, node: str, component: str) -> int | None:
        """The live pid of one component on one node."""
        nd = self.node_dir(node)
        files = {
            "haproxy": nd / "run/haproxy.pid",
            "keepalived": nd / "run/keepalived.pid",
            "galera": nd / "mysql/mysqld.pid",
            "rabbitmq": nd / "rabbit/rabbit.pid",
            "api": nd / "run/standin.pid",
        }
        if component == "rabbitmq":
            return d.pid_from(files[component]) or self._beam_pid(node)
        if component in files:
            return d.pid_from(files[component])
        pid = self.pids.get(f"{component}:{node}")
        return pid if d.alive(pid) else None

    def _beam_pid(self, node: str) -> int | None:
        """The broker's Erlang VM in ``node``'s namespace, found by its command line (a
        broker the minion's supervisor restarted does not always rewrite its pid file); not
        the short-lived VM of a ``rabbitmqctl`` (``-sname rabbitmqcli-...``)."""
        for pid in ip("netns", "pids", self.net.ns(node), check=False).stdout.split():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if argv.split(b"\0")[0].endswith(b"beam.smp") and b"rabbitmqcli" not in argv:
                return int(pid)
        return None


def _step(lab: Lab, name: str, start: float, say: Any) -> None:
    lab.timings[name] = round(time.monotonic() - start, 2)
    lab.save()
    say(f"{name}: {lab.timings[name]:.2f} s")


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
) -> Lab:
    """Bring the whole lab up; on failure everything started so far is torn down. With
    ``supervise`` the minions restart a dead HAProxy or keepalived themselves."""
    comps = set(components or COMPONENTS)
    preflight(comps)
    if comps & {"galera", "rabbitmq"}:
        reachable_by_daemons(folder)
    if (folder / "lab.json").exists():
        raise LabError(f"a lab is already recorded in {folder}: hactl lab down --dir {folder}")
    net = LabNet(prefix, subnet, tuple(f"ctl{i}" for i in range(1, nodes + 1)))
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
        net_up(net)
        lab.save()
        stores.mount_datadirs(lab)
        _step(lab, "network (guard route, hub bridge, namespaces)", t0, say)
        t = time.monotonic()
        make_auth(lab)
        start_cluster(lab)
        _step(lab, "NATS cluster (3 servers, JetStream)", t, say)
        t = time.monotonic()
        _hactl(lab)
        _step(lab, "master, minions, API stand-ins", t, say)
        t = time.monotonic()
        _apply(lab, say)
        _step(lab, "hactl apply (HAProxy + keepalived started by the minions)", t, say)
        t = time.monotonic()
        if "rabbitmq" in comps:  # the brokers boot while Galera bootstraps: neither needs the other
            stores.spawn_brokers(lab)
        if "galera" in comps:
            stores.start_galera(lab)
            _step(lab, "Galera (bootstrap + joiners, all Synced)", t, say)
        if "rabbitmq" in comps:
            stores.wait_brokers(lab)
            _step(lab, "RabbitMQ (3 nodes clustered; started with Galera)", t, say)
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
    for secret in ("stats.pw", "rabbit-monitor.pw", "rabbit-openstack.pw"):
        (lab.dir / secret).write_text(os.urandom(9).hex() + "\n")
        (lab.dir / secret).chmod(0o600)
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
    lab.save()
    for n in net.nodes:
        res = subprocess.run(
            [HACTL, "--nats", lab.nats_url, "ping", n, "--wait", "30"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=lab.cli_env(),
        )
        if res.returncode != 0:
            raise LabError(f"minion {n} does not answer: {res.stderr.strip()}")


def start_minion(lab: Lab, node: str, env: dict[str, str] | None = None) -> None:
    """Start ``node``'s minion inside its namespace (its minion.yaml already written);
    ``env`` adds to its environment (a test's preloaded fake clock)."""
    nd = lab.node_dir(node)
    argv = [HACTL, "--nats", lab.nats_url, "--log-format", "json", "minion"]
    argv += ["--config", str(nd / "minion.yaml")]
    lab.pids[f"minion:{node}"] = d.spawn(
        exec_argv(lab.net, node, argv), nd / "minion.log", {**lab.cli_env(node), **(env or {})}
    )


def start_standin(lab: Lab, node: str) -> None:
    """Start ``node``'s API stand-in through the launcher its minion's ``api`` service uses
    (pid file included)."""
    stand = exec_argv(lab.net, node, standin_argv(lab.dir, node, lab.net.address(node)))
    subprocess.run(stand, check=True, timeout=30, capture_output=True)
    pidfile = lab.node_dir(node) / "run/standin.pid"
    d.wait_for(lambda: d.pid_from(pidfile), 10, f"the API stand-in on {node}")
    lab.pids[f"standin:{node}"] = d.pid_from(pidfile) or 0


def _apply(lab: Lab, say: Any) -> None:
    res = subprocess.run(
        [
            HACTL,
            "--nats",
            lab.nats_url,
            "apply",
            str(states_dir()),
            "--pillar",
            str(lab.dir / "lab-pillar.yaml"),
            "--timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=lab.cli_env(),
    )
    (lab.dir / "apply.log").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        failed = [line for line in res.stdout.splitlines() if "FAILED" in line][:3]
        raise LabError(
            f"hactl apply failed (exit {res.returncode}): {' | '.join(failed)}"
            f" (all of it: {lab.dir / 'apply.log'})"
        )
    d.wait_for(lambda: _vip_holders(lab), 15, "a VIP holder")


def _vip_holders(lab: Lab, vip_index: int = 0) -> list[str]:
    vip = lab.net.vip(vip_index)

    def has(n: str) -> bool:
        return f" {vip}/" in ip("-n", lab.net.ns(n), "-o", "-4", "addr", "show", check=False).stdout

    return [n for n in lab.net.nodes if has(n)]


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        if d.alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def teardown(lab: Lab, say: Any = print, *, keep_logs: bool = False) -> list[str]:
    """End what the lab started (by pid), then what remains in its namespaces; remove all."""
    t0 = time.monotonic()
    pids = [p for p in lab.pids.values() if d.alive(p)]
    for node in lab.net.nodes:
        for comp in ("haproxy", "keepalived", "galera", "rabbitmq"):
            pid = lab.daemon_pid(node, comp)
            if pid:
                pids.append(pid)
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(d.alive(p) for p in pids):
        time.sleep(0.1)
    _signal_all(pids, signal.SIGKILL)
    existing = set(ip("netns", "list", check=False).stdout.split())
    for ns in lab.net.namespaces():  # epmd, SST helpers, check scripts: still ours
        if ns in existing:
            left = [int(p) for p in ip("netns", "pids", ns, check=False).stdout.split()]
            _signal_all(left, signal.SIGKILL)
    time.sleep(0.3)
    # the JSON dumps the lab's minions asked its keepalived for (keepalived_state.py): a
    # fixed path in /tmp, and its lock
    for leftover in (JSON_FILE, f"{JSON_FILE}.hactl-lock"):
        Path(leftover).unlink(missing_ok=True)
    problems = [p for n in lab.net.nodes if (p := d.datadir_unmount(lab.node_dir(n)))]
    problems += net_down(lab.net)
    if keep_logs:
        (lab.dir / "lab.json").unlink(missing_ok=True)
        shutil.rmtree(lab.dir / "rabbit-home", ignore_errors=True)
    else:
        shutil.rmtree(lab.dir, ignore_errors=True)
    say(
        f"lab down: {time.monotonic() - t0:.2f} s" + (f"; problems: {problems}" if problems else "")
    )
    return problems


def holders(lab: Lab) -> dict[str, list[str]]:
    """VIP -> nodes holding it right now (from each namespace's addresses)."""
    return {lab.net.vip(i): _vip_holders(lab, i) for i in (0, 1)}


# the lab's masters live in hactl/lab/masters.py, its data tier in hactl/lab/datastores.py;
# tests and the CLI reach them through here
__all__ = [
    "HACTL",
    "Lab",
    "holders",
    "rules_dir",
    "start_master",
    "start_rabbit",
    "stop_master",
    "teardown",
    "up",
]
