"""A compromised known minion floods the master: 10,000 malformed, oversized and item-flooding
events with its own key, through a real nats-server (auth, TLS) into a real master.

Reported: what the master refused (wire rejects, view rejects by aspect), the master's peak
resident memory (the Trust II bar: under 150 MB), and the reaction latency of a real event from
a healthy minion before the flood (the baseline, same run) and right after it.
Usage: .venv/bin/python benchmarks/hostile_minion.py [N]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import bench_auth, client, env, teardown
from hactl.auth.perms import EVENTS_STREAM, REACTOR_CONSUMER
from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.wire.envelope import Event, encode, new_event

HACTL = str(Path(sys.executable).parent / "hactl")
RSS_LIMIT_MB = 150
RULES = """
- name: svc-down
  on: hactl/beacon/ctl2/service
  when: event.data["items"]["keystone"]["up"] == false
  do:
    - event.fire: {tag: hactl/event/bench/down, data: {seq: "{{ event.data['items']['keystone']['detail'] }}"}}
"""


def _bad(i: int) -> tuple[str, bytes]:
    """The i-th hostile message: (subject, payload), five kinds in turn."""
    kind = i % 5
    if kind == 0:  # not msgpack at all
        return "hactl.beacon.ctl1.vrrp", b"\xc1" * (i % 300 + 1)
    if kind == 1:  # the poison of the issue
        items: Any = {"VI_1": {"state": "MASTER", "priority": 150, "vips": [[i]]}}
        return _env("vrrp", items)
    if kind == 2:  # item flood: more items than a beacon may report
        return _env("haproxy", {f"b/s{j}": {"status": "UP"} for j in range(4100)})
    if kind == 3:  # oversized strings and names, unknown fields
        return _env("service", {"k" * 300: {"detail": "x" * 5000, "shell": "id"}})
    return _env("galera", {"local": {"running": "yes", "seqno": "many"}})  # wrong types


def _env(beacon: str, items: Any) -> tuple[str, bytes]:
    ev = new_event(f"hactl/beacon/ctl1/{beacon}", "ctl1", {"items": items, "changes": []})
    return f"hactl.beacon.ctl1.{beacon}", encode(ev)


def _rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set of ``pid`` in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


async def _reactions(url: str, auth: ServerAuth, n: int, start: int) -> list[float]:
    """Seconds from a real service event of ctl2 to the rule's follow-up, one at a time."""
    bus = await Bus.connect(url, client(auth, "ctl2"), name="bench-healthy", timeout=10)
    reader = await Bus.connect(url, client(auth), name="bench-reader", timeout=10)
    waiting: dict[str, asyncio.Future[float]] = {}

    async def on_down(e: Event) -> None:
        fut = waiting.pop(str(e.data.get("seq")), None)
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())

    await reader.subscribe("hactl/event/bench/down", on_down)
    loop = asyncio.get_running_loop()
    out = []
    try:
        for i in range(start, start + n):
            fut: asyncio.Future[float] = loop.create_future()
            waiting[f"d{i}"] = fut
            items = {"keystone": {"url": "http://127.0.0.1:5000/", "up": False, "detail": f"d{i}"}}
            ev = new_event("hactl/beacon/ctl2/service", "ctl2", {"items": items, "changes": []})
            t = time.perf_counter()
            await bus.persist(ev)
            out.append(await asyncio.wait_for(fut, 30) - t)
    finally:
        await bus.close()
        await reader.close()
    return out


async def _flood(url: str, auth: ServerAuth, n: int) -> float:
    """ctl1 (its own key) stores ``n`` hostile messages; seconds it took."""
    bus = await Bus.connect(url, client(auth, "ctl1"), name="bench-hostile", timeout=10)
    t = time.perf_counter()
    try:
        pending = []
        for i in range(n):
            subject, payload = _bad(i)
            pending.append(bus.js.publish(subject, payload))
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await bus.close()
    return time.perf_counter() - t


async def _stats(url: str, auth: ServerAuth) -> dict[str, Any]:
    bus = await Bus.connect(url, client(auth, "admin"), name="bench-stats", timeout=10)
    try:
        reply = await bus.request("master", "master.stats", timeout=10)
        return dict(reply.result)
    finally:
        await bus.close()


async def _settle(url: str, auth: ServerAuth) -> None:
    """Until the master has read everything stored (its consumer has nothing pending)."""
    for _ in range(600):
        stats = await _stats(url, auth)
        if stats.get("reactor", {}).get("events", 0) and not await _pending(url, auth):
            return
        await asyncio.sleep(0.5)


async def _pending(url: str, auth: ServerAuth) -> int:
    bus = await Bus.connect(url, client(auth), name="bench-pending", timeout=10)
    try:
        info = await bus.js.consumer_info(EVENTS_STREAM, REACTOR_CONSUMER)
        return int(info.num_pending) + int(info.num_ack_pending)
    finally:
        await bus.close()


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank), in ms."""
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1)] * 1000


def main() -> int:
    """Start NATS and a master; baseline; flood; measure again; print."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    d = Path(tempfile.mkdtemp(prefix="hactl-hostile-"))
    (d / "reactors").mkdir()
    (d / "reactors" / "bench.yaml").write_text(RULES)
    auth = bench_auth(d)
    server = EmbeddedServer(ServerOptions(data_dir=d / "nats", auth=auth, port=-1))
    url = server.start()
    master: subprocess.Popen[bytes] | None = None
    try:

        async def prep() -> None:
            bus = await Bus.connect(url, client(auth), name="prep", timeout=10)
            await ensure_stream(bus, StreamSettings())
            await bus.close()

        asyncio.run(prep())
        master = subprocess.Popen(
            [HACTL, "--nats", url, "-q", "master", "--reactors", str(d / "reactors")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env(auth, "master"),
        )
        time.sleep(4.0)
        asyncio.run(_reactions(url, auth, 50, 0))  # warm-up
        before = asyncio.run(_reactions(url, auth, 300, 1000))
        rss0 = _rss_mb(master.pid)
        took = asyncio.run(_flood(url, auth, n))
        asyncio.run(_settle(url, auth))
        after = asyncio.run(_reactions(url, auth, 300, 2000))
        rss1 = _rss_mb(master.pid)
        stats = asyncio.run(_stats(url, auth))
        rejects = {k: v for k, v in stats.items() if k.startswith("rejected")}
        view = stats.get("reactor", {}).get("view_rejected", {})
        print(
            f"hostile minion: {n} malformed/oversized/flooding events from ctl1's own key, "
            f"stored in {took:.1f} s"
        )
        print(f"  refused by the wire layer: {rejects}")
        print(f"  refused at the view's boundary: {view} (total {sum(view.values())})")
        print(
            f"  master RSS before {rss0[0]:.1f} MB, after {rss1[0]:.1f} MB, peak "
            f"{rss1[1]:.1f} MB (limit {RSS_LIMIT_MB} MB): "
            f"{'ok' if rss1[1] < RSS_LIMIT_MB else 'OVER'}"
        )
        b50, b99, a50, a99 = pct(before, 50), pct(before, 99), pct(after, 50), pct(after, 99)
        print(
            f"  reaction to a real event (300 each): before p50 {b50:.3f} ms p99 {b99:.3f} ms"
            f" (baseline); right after p50 {a50:.3f} ms p99 {a99:.3f} ms "
            f"({a50 / b50:.2f}x / {a99 / b99:.2f}x baseline)"
        )
        print(
            f"  medians {statistics.median(before) * 1000:.3f} -> "
            f"{statistics.median(after) * 1000:.3f} ms"
        )
        return 0 if rss1[1] < RSS_LIMIT_MB else 1
    finally:
        teardown(master, server, d)


if __name__ == "__main__":
    os.environ.pop("HACTL_NATS", None)
    sys.exit(main())
