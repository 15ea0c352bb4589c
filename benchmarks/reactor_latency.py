"""Reactor latency: beacon event -> rule -> follow-up, through a real master and minion.

1. ``event.fire``: the bench publishes a beacon event as minion ``benchm``; a rule fires a
   follow-up event; the bench waits for it. 2,000 events, one at a time.
2. an action on a minion: a rule runs ``minion.ping`` (a test.ping request to a real
   ``hactl minion`` and its reply); the bench waits for the rule's ``done`` event.
Baseline in the same run: a raw NATS request/reply to the same minion (``test.ping``).
Usage: .venv/bin/python benchmarks/reactor_latency.py [N]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import bench_auth, client, env
from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.wire.envelope import Event, new_event
from tests.integration.conftest import HARNESS

HACTL = str(Path(sys.executable).parent / "hactl")
RULES = """
- name: lat-fire
  on: hactl/beacon/benchm/lat
  do:
    - event.fire: {tag: hactl/event/lat/pong, data: {seq: "{{ event.data.seq }}"}}
- name: lat-ping
  on: hactl/beacon/benchm/ping
  do:
    - minion.ping: {node: benchm}
"""


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank), in ms."""
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1)] * 1000


async def measure(url: str, n: int, auth: ServerAuth) -> dict[str, list[float]]:
    """Three series of round trips, one at a time."""
    bus = await Bus.connect(url, client(auth), name="bench-latency", timeout=10)
    waiting: dict[str, asyncio.Future[float]] = {}

    async def on_pong(e: Event) -> None:
        key = str(e.data.get("seq") if e.tag.endswith("pong") else e.data.get("event_id"))
        fut = waiting.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())

    await bus.subscribe("hactl/event/lat/pong", on_pong)
    await bus.subscribe("hactl/reactor/lat-ping/done", on_pong)
    loop = asyncio.get_running_loop()
    out: dict[str, list[float]] = {"baseline": [], "fire": [], "action": []}
    for _ in range(200):  # warm-up: imports, caches, consumer
        await bus.request("benchm", "test.ping", timeout=5)
    for _ in range(n):
        t = time.perf_counter()
        await bus.request("benchm", "test.ping", timeout=5)
        out["baseline"].append(time.perf_counter() - t)
    for series, tag in (
        ("fire", "hactl/beacon/benchm/lat"),
        ("action", "hactl/beacon/benchm/ping"),
    ):
        for i in range(n + 50):
            ev = new_event(tag, "benchm", {"seq": i})
            key = str(i) if series == "fire" else ev.id
            fut: asyncio.Future[float] = loop.create_future()
            waiting[key] = fut
            t = time.perf_counter()
            await bus.publish(ev, msg_id=ev.id)
            done = await asyncio.wait_for(fut, 10)
            if i >= 50:  # the first 50 warm the path
                out[series].append(done - t)
    await bus.close()
    return out


def main() -> None:
    """Start NATS, a master with the two rules and a minion; measure; print."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    d = Path(tempfile.mkdtemp(prefix="hactl-lat-"))
    (d / "reactors").mkdir()
    (d / "reactors" / "lat.yaml").write_text(RULES)
    auth = bench_auth(d)
    server = EmbeddedServer(ServerOptions(data_dir=d / "nats", auth=auth, port=-1))
    url = server.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:

        async def prep() -> None:
            bus = await Bus.connect(url, client(auth), name="prep", timeout=10)
            await ensure_stream(bus, StreamSettings())
            await bus.close()

        asyncio.run(prep())
        for argv in (["master", "--reactors", str(d / "reactors")], ["minion", "--id", "benchm"]):
            procs.append(
                subprocess.Popen(
                    [HACTL, "--nats", url, "-q", *argv],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env(auth, "master" if argv[0] == "master" else HARNESS),
                )
            )
        time.sleep(4.0)
        res = asyncio.run(measure(url, n, auth))
        base = statistics.median(res["baseline"]) * 1000
        print(f"reactor latency, {n} events one at a time (real master and minion)")
        for name, label in (
            ("baseline", "raw NATS request/reply (test.ping)"),
            ("fire", "beacon -> rule -> event.fire -> seen"),
            ("action", "beacon -> rule -> minion.ping -> done seen"),
        ):
            p50, p99 = pct(res[name], 50), pct(res[name], 99)
            print(
                f"  {label:<44} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  (p50 {p50 / base:5.1f}x baseline)"
            )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    os.environ.pop("HACTL_NATS", None)
    main()
