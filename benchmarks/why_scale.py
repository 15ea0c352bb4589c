"""``hactl why`` on a busy stream: a cause, its decisions and follow-up, then 100,000 other
events (by default 80 % beacons and heartbeats of 50 minions, 20 % decisions about other
events), all inside the cause's effects window -- the most a ``why`` has to wade through.

Measured: the wall time of ``hactl why <id> --json`` (a CLI process, as an operator runs it),
against a baseline from the same run: ``hactl history --since 1s`` on the same server (the
CLI's start-up, its connection and one stream read, which every command pays). The chain it
printed is checked.
Usage: .venv/bin/python benchmarks/why_scale.py [N_OTHER] [SHARE_OF_DECISIONS]
"""

from __future__ import annotations

import asyncio
import json
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
from hactl.auth.perms import EVENTS_STREAM
from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.wire.envelope import encode, new_event

HACTL = str(Path(sys.executable).parent / "hactl")


async def fill(url: str, auth: ServerAuth, n: int, share: float) -> str:
    """The cause and its chain, then ``n`` other events; returns the cause's id."""
    bus = await Bus.connect(url, client(auth), name="bench-why", timeout=10)
    try:
        await ensure_stream(bus, StreamSettings(max_bytes=2 * 1024**3))
        cause = new_event("hactl/beacon/ctl1/vrrp", "ctl1", {"items": {"VI_1": "FAULT"}})
        await bus.persist(cause)
        base = {"event_id": cause.id, "event_tag": cause.tag, "event_ts": cause.ts}
        fired = new_event(
            "hactl/reactor/drain/fired", "master", {"rule": "drain", **base, "key": "ctl1"}
        )
        follow = new_event("hactl/event/alert/drained", "master", {"trigger": cause.id})
        done = new_event(
            "hactl/reactor/drain/done", "master", {"rule": "drain", **base, "results": []}
        )
        for e in (fired, follow, done):
            await bus.persist(e)
        decisions = int(n * share)
        for i in range(n):
            if i < decisions:
                other = new_event(
                    f"hactl/reactor/r{i % 20}/done",
                    "master",
                    {"rule": f"r{i % 20}", "event_id": f"x{i}", "key": f"k{i % 50}"},
                )
            elif i % 2:
                other = new_event(f"hactl/beacon/n{i % 50}/haproxy", f"n{i % 50}", {"i": i})
            else:
                other = new_event(f"hactl/minion/n{i % 50}/heartbeat", f"n{i % 50}", {"i": i})
            await bus.nc.publish(other.subject, encode(other))
            if i % 5000 == 4999:
                await bus.nc.flush(timeout=30)
        await bus.nc.flush(timeout=30)
        want = n + 4
        for _ in range(600):  # stored, all of them
            info = await bus.js.stream_info(EVENTS_STREAM)
            if info.state.messages >= want:
                break
            await asyncio.sleep(0.1)
        return cause.id
    finally:
        await bus.close()


def timed(argv: list[str], environ: dict[str, str]) -> tuple[float, str]:
    """Wall time of one CLI run, and what it printed."""
    t = time.perf_counter()
    out = subprocess.run(
        argv, capture_output=True, text=True, env=environ, timeout=120, check=False
    )
    took = time.perf_counter() - t
    assert out.returncode == 0, out.stderr
    return took, out.stdout


def main() -> None:
    """Fill a stream, then time ``why`` and the baseline, 5 runs each."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    share = float(sys.argv[2]) if len(sys.argv) > 2 else 0.2
    d = Path(tempfile.mkdtemp(prefix="hactl-why-"))
    auth = bench_auth(d)
    server = EmbeddedServer(ServerOptions(data_dir=d / "nats", auth=auth, port=-1))
    url = server.start()
    try:
        t = time.perf_counter()
        cause = asyncio.run(fill(url, auth, n, share))
        print(f"stored {n:,} other events in {time.perf_counter() - t:.1f} s")
        environ = env(auth, "admin")
        base = [HACTL, "--nats", url, "-q"]
        pings, whys = [], []
        chain: dict[str, object] = {}
        for _ in range(5):
            pings.append(timed([*base, "history", "--since", "1s", "--json"], environ)[0])
            took, out = timed([*base, "why", cause, "--json"], environ)
            whys.append(took)
            chain = json.loads(out)
        assert chain["id"] == cause, chain
        assert len(chain["decisions"]) == 2, chain  # type: ignore[arg-type]
        assert len(chain["caused"]) == 1, chain  # type: ignore[arg-type]
        p, w = statistics.median(pings), statistics.median(whys)
        print(f"hactl why on {n:,} other events ({share:.0%} of them decisions)")
        print(f"  hactl history --since 1s (baseline)          median {p:.2f} s")
        print(
            f"  hactl why <cause> --json                     median {w:.2f} s  max {max(whys):.2f} s"
        )
        print(f"  why - baseline                               {w - p:.2f} s ({w / p:.1f}x)")
    finally:
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    os.environ.pop("HACTL_NATS", None)
    main()
