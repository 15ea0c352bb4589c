"""An event storm against one real master: 1,000 simulated minions, steady, then all flapping.

What a large site sends a master, through a real ``hactl master`` (the shipped rules, the
reconciler on) on an embedded server with auth and TLS:

- **steady**: each minion's heartbeat every 10 s (the shipped ``heartbeat_interval``) and its
  ``supervisor`` beacon's report with no change every 30 s (``resync_interval``): ~133 events/s
  for 1,000 minions;
- **storm**: on top of that, every minion's beacon flaps once a second (its ``haproxy`` service
  running, then not) for ``--storm`` seconds: a switch blip seen by every node at once;
- **recovery**: steady traffic again until the master has caught up.

Measured per phase: the master's CPU (share of one core) and peak RSS, nats-server's CPU, the
reactor consumer's backlog (stored, not yet delivered) and unacknowledged deliveries; after the
storm, the time until the master has acknowledged every stored event, the view in KV holds
every minion's last state, and the reconciler has made a pass after that. Lost: events
published but not stored, or stored but never acknowledged by the master, or a minion whose
stored view is not its last state.
Usage: .venv/bin/python benchmarks/storm.py [--minions 1000] [--steady 30] [--storm 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import bench_auth, client, env, teardown
from benchmarks.reactor_throughput import cpu_s, rss_mb
from hactl.auth.perms import REACTOR_CONSUMER
from hactl.bus import EVENTS_STREAM, Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerOptions
from hactl.bus.viewstore import ViewStore
from hactl.data import reactors_dir
from hactl.wire.envelope import Event, new_event

HACTL = str(Path(sys.executable).parent / "hactl")
HEARTBEAT_S, RESYNC_S = 10, 30  # the shipped minion.yaml defaults
SERVICE = "haproxy"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _item(running: bool, flips: int) -> dict[str, Any]:
    return {
        "running": running,
        "deaths": 0,
        "restarts": flips,  # which report this is: the view must hold the last one
        "given_up": False,
        "last_error": "",
        "suspended": "",
    }


@dataclass
class Sims:
    """What the simulated minions have said (their last state is what the view must hold)."""

    names: list[str]
    running: dict[str, bool] = field(default_factory=dict)
    flips: dict[str, int] = field(default_factory=dict)
    published: int = 0

    def report(self, node: str, flip: bool) -> Event:
        """The node's supervisor beacon event: a flip of its service, or a resync. Each flip
        counts up ``restarts``, so the view's value names the report it came from (an even
        number of flips ends where it began: the state alone cannot tell)."""
        was = self.running.get(node, True)
        now = not was if flip else was
        self.running[node] = now
        self.flips[node] = self.flips.get(node, 0) + int(flip)
        changes = [{"item": SERVICE, "field": "running", "value": now, "prev": was}] if flip else []
        data = {
            "items": {SERVICE: _item(now, self.flips[node])},
            "changes": changes,
            "resync": not flip,
        }
        return new_event(f"hactl/beacon/{node}/supervisor", node, data)


async def _publish(bus: Bus, events: list[Event], sims: Sims) -> None:
    for ev in events:
        await bus.publish(ev, msg_id=ev.id)
    sims.published += len(events)


async def _tick(bus: Bus, sims: Sims, second: int, storm: bool) -> None:
    """One second of traffic: heartbeats and resyncs spread over their intervals, plus a
    flap of every minion during the storm."""
    out: list[Event] = []
    for i, node in enumerate(sims.names):
        if i % HEARTBEAT_S == second % HEARTBEAT_S:
            out.append(new_event(f"hactl/minion/{node}/heartbeat", node, {"roles": ["compute"]}))
        if storm:
            out.append(sims.report(node, flip=True))
        elif i % RESYNC_S == second % RESYNC_S:
            out.append(sims.report(node, flip=False))
    await _publish(bus, out, sims)


@dataclass
class Phase:
    """Samples of one phase."""

    name: str
    start: float = 0.0
    end: float = 0.0
    cpu0: tuple[float, float] = (0.0, 0.0)
    cpu1: tuple[float, float] = (0.0, 0.0)
    published0: int = 0
    published1: int = 0
    rss: float = 0.0
    backlog: int = 0
    unacked: int = 0


async def _sample(bus: Bus, phase: Phase, master: int) -> None:
    phase.rss = max(phase.rss, rss_mb(master))
    info = await bus.js.consumer_info(EVENTS_STREAM, REACTOR_CONSUMER, timeout=5)
    phase.backlog = max(phase.backlog, int(info.num_pending or 0))
    phase.unacked = max(phase.unacked, int(info.num_ack_pending or 0))


async def _run_phase(
    bus: Bus, sims: Sims, phase: Phase, seconds: int, storm: bool, pids: tuple[int, int]
) -> None:
    phase.start, phase.published0 = time.monotonic(), sims.published
    phase.cpu0 = (cpu_s(pids[0]), cpu_s(pids[1]))
    for s in range(seconds):
        t = time.monotonic()
        await _tick(bus, sims, s, storm)
        await _sample(bus, phase, pids[0])
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
    phase.end, phase.published1 = time.monotonic(), sims.published
    phase.cpu1 = (cpu_s(pids[0]), cpu_s(pids[1]))


def _passes(metrics: str) -> float:
    """The reconciler's pass count from the master's metrics endpoint."""
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith("hactl_master_reconciler_passes"):
            return float(line.split()[-1])
    return -1.0


async def _view_behind(bus: Bus, sims: Sims) -> int:
    """Minions whose stored view is not their last report."""
    entries = await ViewStore(bus).load(lambda key, why: None)
    stored = {n: v for n, a, v, _ in entries if a == "supervisor"}
    return sum(
        1
        for node, flips in sims.flips.items()
        if (stored.get(node) or {}).get(SERVICE, {}).get("restarts") != flips
    )


async def _delivered(bus: Bus, upto: int) -> bool:
    """The master's consumer has delivered every stored event up to stream sequence ``upto``
    (acknowledgements may wait on a rule's debounce: that is not a backlog)."""
    info = await bus.js.consumer_info(EVENTS_STREAM, REACTOR_CONSUMER, timeout=5)
    return int(info.delivered.stream_seq or 0) >= upto and not info.num_pending


async def bench(url: str, auth: Any, args: argparse.Namespace, pids: tuple[int, int]) -> None:
    """The three phases, then convergence, then the figures."""
    bus = await Bus.connect(url, client(auth), name="bench-storm", timeout=10)
    sims = Sims([f"sim{i:04d}" for i in range(args.minions)])
    try:
        starts = [
            new_event(f"hactl/minion/{n}/start", n, {"roles": ["compute"]}) for n in sims.names
        ]
        await _publish(bus, starts, sims)
        await _publish(bus, [sims.report(n, flip=False) for n in sims.names], sims)
        deadline = time.monotonic() + 300
        while await _view_behind(bus, sims) != 0:
            assert time.monotonic() < deadline, "the master did not take in the first reports"
            await asyncio.sleep(1.0)
        phases = [Phase("steady"), Phase("storm"), Phase("after")]
        await _run_phase(bus, sims, phases[0], args.steady, False, pids)
        await _run_phase(bus, sims, phases[1], args.storm, True, pids)
        storm_end = time.monotonic()
        passes0 = -1.0
        after = phases[2]
        after.start, after.published0 = storm_end, sims.published
        after.cpu0 = (cpu_s(pids[0]), cpu_s(pids[1]))
        last = int((await bus.js.stream_info(EVENTS_STREAM)).state.last_seq)
        marks: dict[str, float] = {}
        second = 0
        while len(marks) < 3 and time.monotonic() - storm_end < args.timeout:
            t = time.monotonic()
            await _tick(bus, sims, second, False)
            second += 1
            await _sample(bus, after, pids[0])
            since = time.monotonic() - storm_end
            if "delivered" not in marks and await _delivered(bus, last):
                marks["delivered"] = since
            if "view" not in marks and await _view_behind(bus, sims) == 0:
                marks["view"] = since
            if len(marks) == 2:  # then a reconciler pass that saw all of it
                now_passes = _passes(args.metrics)
                if passes0 < 0:
                    passes0 = now_passes
                elif now_passes > passes0:
                    marks["pass"] = since
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
        converged = max(marks.values()) if len(marks) == 3 else None
        after.end, after.published1 = time.monotonic(), sims.published
        after.cpu1 = (cpu_s(pids[0]), cpu_s(pids[1]))
        await asyncio.sleep(2.0)
        info = await bus.js.stream_info(EVENTS_STREAM)
        consumer = await bus.js.consumer_info(EVENTS_STREAM, REACTOR_CONSUMER, timeout=5)
        behind = await _view_behind(bus, sims)
        redelivered = int(consumer.num_redelivered or 0)
        _report(args, phases, sims, converged, info, consumer, behind, redelivered)
        print(
            "  after the storm: every stored event delivered "
            + ", view in KV current ".join(
                f"{marks[k]:.1f} s" if k in marks else "never" for k in ("delivered", "view")
            )
            + (f", a reconciler pass {marks['pass']:.1f} s" if "pass" in marks else "")
        )
    finally:
        await bus.close()


def _report(
    args: argparse.Namespace,
    phases: list[Phase],
    sims: Sims,
    converged: float | None,
    info: Any,
    consumer: Any,
    behind: int,
    redelivered: int,
) -> None:
    print(f"event storm: {args.minions} simulated minions, one real master (shipped rules)")
    print(
        "  phase     s   events/s  master CPU  master RSS peak  nats-server CPU  backlog max  unacked max"
    )
    for p in phases:
        wall = max(p.end - p.start, 1e-9)
        rate = (p.published1 - p.published0) / wall
        mcpu = (p.cpu1[0] - p.cpu0[0]) / wall * 100
        scpu = (p.cpu1[1] - p.cpu0[1]) / wall * 100
        print(
            f"  {p.name:7} {wall:4.0f} {rate:9,.0f} {mcpu:9.0f} % {p.rss:13.1f} MB"
            f" {scpu:14.0f} % {p.backlog:12,} {p.unacked:12,}"
        )
    took = f"{converged:.1f} s" if converged is not None else f"not within {args.timeout} s"
    print(f"  converged after the storm: {took} (every stored event delivered to the master,")
    print("    the view in KV holds every minion's last state, a reconciler pass since)")
    unacked = int(info.state.last_seq) - int(consumer.ack_floor.stream_seq)
    print(
        f"  published {sims.published:,}; stream messages {info.state.messages:,};"
        f" stored but not acknowledged {unacked:,}; minions whose view is not their last"
        f" state {behind}; redelivered {redelivered}"
    )


def main() -> int:
    """Set up the server and the master, run, tear down."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minions", type=int, default=1000)
    ap.add_argument("--steady", type=int, default=30, help="seconds before the storm")
    ap.add_argument("--storm", type=int, default=60, help="seconds of one flap per minion")
    ap.add_argument("--timeout", type=int, default=300, help="seconds to converge after it")
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="hactl-storm-"))
    auth = bench_auth(d)
    server = EmbeddedServer(ServerOptions(data_dir=d / "nats", auth=auth, port=-1))
    url = server.start()
    master = None
    args.metrics = f"127.0.0.1:{_free_port()}"
    try:

        async def prep() -> None:
            bus = await Bus.connect(url, client(auth), name="bench-prep", timeout=10)
            await ensure_stream(bus, StreamSettings(max_bytes=2 * 1024**3))
            await bus.close()

        asyncio.run(prep())
        log = (d / "master.log").open("wb")
        argv = [HACTL, "--nats", url, "--log-format", "json", "master"]
        argv += ["--reactors", str(reactors_dir()), "--metrics", args.metrics]
        master = subprocess.Popen(
            argv,
            stdout=log,
            stderr=log,
            env=env(auth, "master"),
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if _passes(args.metrics) >= 0:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or master.poll() is not None:
                print("storm.py: the master did not start; its log:", file=sys.stderr)
                print((d / "master.log").read_text()[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.5)
        asyncio.run(bench(url, auth, args, (master.pid, server.pid)))
    finally:
        teardown(master, server, d)
    return 0


if __name__ == "__main__":
    os.environ.pop("HACTL_NATS", None)
    sys.exit(main())
