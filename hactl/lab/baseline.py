"""The lab's healthy baseline, checked: what a lab test may assume when it starts.

Lab test modules share one lab; a fault one test injects must be gone before the next one
measures anything. :func:`deviations` lists, in words, every way the lab differs from the
baseline ``hactl lab up`` left (each VIP on exactly one node, every daemon running, Galera
Primary/Synced everywhere, every server UP in every HAProxy, no partition table, no VRRP yield
or HAProxy-down flag, every NATS server, minion and the master running, the stand-in
singleton running on exactly one node); :func:`wait_baseline` waits for that list to empty
(hactl's own repair is what empties it) and says what is still wrong when it does not.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from hactl.lab import daemons as d
from hactl.lab.config import SINGLETON
from hactl.lab.lab import holders
from hactl.lab.model import COMPONENTS, Lab
from hactl.lab.net import LabError, exec_argv, ip


def _flags(run: Path) -> list[str]:
    """Track files the minion set to 1 (``yield_<INSTANCE>``, ``down_haproxy``)."""
    raised = []
    for f in sorted(run.glob("yield_*")) + sorted(run.glob("down_*")):
        try:
            if f.read_text().strip() not in ("", "0"):
                raised.append(f.name)
        except OSError:
            continue
    return raised


def _nft_tables(lab: Lab, node: str) -> str:
    """nft tables inside the node's namespace (a partition a test left); '' when none."""
    try:
        res = subprocess.run(
            exec_argv(lab.net, node, ["nft", "list", "tables"]),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return " ".join(res.stdout.split())


def singleton_pidfile(lab: Lab, node: str) -> Path:
    """Where the lab's stand-in singleton on ``node`` keeps its pid."""
    return lab.node_dir(node) / "run" / f"{SINGLETON}.pid"


#: a port every lab's HAProxy listens on, on both VIPs (the keystone frontend: stand-ins)
_VIP_PORT = 5000


def _answers(address: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to ``address:port`` (a lab VIP) is accepted within
    ``timeout``."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _neighbour(address: str) -> str:
    """The root namespace's neighbour entry for ``address`` (which MAC it sends to)."""
    return " ".join(ip("neigh", "show", address, check=False).stdout.split()) or "none"


def deviations(lab: Lab) -> list[str]:
    """Every way the lab differs from its healthy baseline right now ([] when it is healthy)."""
    out: list[str] = []
    for vip, nodes in holders(lab).items():
        if len(nodes) != 1:
            out.append(f"VIP {vip} held by {', '.join(nodes) or 'no node'}")
        elif "haproxy" in lab.components and not _answers(vip, _VIP_PORT):
            # held, yet a client outside the lab gets no connection (CI once: a broker
            # client's connect to the VIP timed out right after a clean baseline)
            out.append(
                f"VIP {vip} (on {nodes[0]}) does not answer on {_VIP_PORT} from the root "
                f"namespace (neighbour: {_neighbour(vip)})"
            )
    for node in lab.net.nodes:
        nd = lab.node_dir(node)
        for comp in sorted(lab.components & set(COMPONENTS)):
            if lab.daemon_pid(node, comp) is None:
                out.append(f"{comp} not running on {node}")
        if "galera" in lab.components:
            state = d.galera_state(nd / "mysql/mysqld.sock")
            if state != ("Primary", "Synced"):
                out.append(f"Galera on {node}: {state or 'not answering'}")
        if "haproxy" in lab.components:
            servers = d.haproxy_servers(nd / "run/haproxy.sock")
            if not servers:
                out.append(f"HAProxy on {node} does not answer")
            bad = sorted(f"{k} {v}" for k, v in servers.items() if v != "UP")
            if bad:
                out.append(f"HAProxy on {node}: {'; '.join(bad[:6])}")
        if flags := _flags(nd / "run"):
            out.append(f"{node} flags {', '.join(flags)} for keepalived")
        link = ip("-n", lab.net.hub, "-o", "link", "show", f"v-{node}"[:15], check=False).stdout
        if link and " master br0 " not in link:
            out.append(f"{node} is partitioned (its link is off the bridge)")
        if tables := _nft_tables(lab, node):
            out.append(f"{node} has nft {tables}")
    if not d.alive(lab.pids.get("master")):
        out.append("the master is not running")
    for node in lab.net.nodes:
        if not d.alive(lab.pids.get(f"nats:{node}")):
            out.append(f"the NATS server of {node} is not running")
        if not d.alive(lab.pids.get(f"minion:{node}")):
            out.append(f"the minion of {node} is not running")
    copies = [n for n in lab.net.nodes if d.pid_from(singleton_pidfile(lab, n))]
    if len(copies) != 1:
        out.append(f"singleton {SINGLETON} runs on {', '.join(copies) or 'no node'}")
    return out


def wait_baseline(lab: Lab, timeout: float = 90.0) -> tuple[float, list[str]]:
    """Seconds until the lab is at its baseline, and what was wrong at first ([] when nothing
    was); LabError naming what is still wrong after ``timeout``."""
    t0 = time.monotonic()
    first: list[str] | None = None
    while True:
        wrong = deviations(lab)
        if first is None:
            first = wrong
        if not wrong:
            return time.monotonic() - t0, first
        if time.monotonic() - t0 > timeout:
            raise LabError(
                f"the lab did not return to its healthy baseline within {timeout:.0f} s: "
                + " | ".join(wrong)
            )
        time.sleep(0.5)
