"""Reactor throughput: a burst of events against 200 rules, through a real `hactl master`.

200 rules (``on: hactl/event/t<k>/*``, a ``when`` over the event data, ``event.fire``); each
event of the burst matches exactly one rule. The burst is published as fast as the client can;
the clock stops when the last ``done`` is stored. Counted in the stream afterwards: every
event's ``done`` exactly once (zero lost, zero duplicated). The master's RSS is sampled idle
and during the burst. Baseline in the same run: raw NATS, a plain subscriber that republishes
every message of the same burst (what one reaction costs without hactl).
Usage: .venv/bin/python benchmarks/reactor_throughput.py [EVENTS] [RULES]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nats
from nats.js import api

from benchmarks.common import bench_auth, client, env
from hactl.bus import EVENTS_STREAM, Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.wire.envelope import decode, new_event

HACTL = str(Path(sys.executable).parent / "hactl")


def cpu_s(pid: int) -> float:
    """User+system CPU seconds of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rules_yaml(n: int) -> str:
    """``n`` rules, one per tag family."""
    return "".join(
        f"- name: r{k}\n  on: hactl/event/t{k}/*\n  when: event.data.n >= 0\n"
        f'  do:\n    - event.fire: {{tag: hactl/event/out{k}/x, data: {{n: "{{{{ event.data.n }}}}"}}}}\n'
        for k in range(n)
    )


async def baseline(url: str, events: int, auth: ServerAuth) -> float:
    """Raw NATS: publish the burst, an echo subscriber republishes each; seconds to the last."""
    opts = client(auth).connect_options()
    a, b = await nats.connect(url, **opts), await nats.connect(url, **opts)
    got = 0
    done = asyncio.Event()

    async def echo(msg: nats.aio.msg.Msg) -> None:
        await b.publish("bench.echo.out", msg.data)

    async def count(_: nats.aio.msg.Msg) -> None:
        nonlocal got
        got += 1
        if got == events:
            done.set()

    await b.subscribe("bench.echo.in", cb=echo)
    await a.subscribe("bench.echo.out", cb=count)
    await a.flush()
    await a.flush()  # nats-py: the first PING may overtake the SUB (see Bus.sync)
    await b.flush()
    await b.flush()
    payload = [new_event(f"hactl/event/t{i % 200}/e", "bench", {"n": i}) for i in range(events)]
    from hactl.wire.envelope import encode  # noqa: PLC0415 - after sys.path is set

    start = time.perf_counter()
    for ev in payload:
        await a.publish("bench.echo.in", encode(ev))
    await asyncio.wait_for(done.wait(), 300)
    took = time.perf_counter() - start
    await a.close()
    await b.close()
    return took


async def stored_done(bus: Bus, rules: int) -> list[str]:
    """Every done event's trigger id, from the stream."""
    sub = await bus.js.pull_subscribe(
        "hactl.reactor.*.done",
        stream=EVENTS_STREAM,
        config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE),
    )
    ids: list[str] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(5000, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                return ids
            ids += [decode(m.data, m.subject).data["event_id"] for m in msgs]
    finally:
        await sub.unsubscribe()


async def burst(
    url: str, events: int, rules: int, master_pid: int, server_pid: int, auth: ServerAuth
) -> dict[str, Any]:
    """Publish, wait for every done, verify; returns the figures."""
    bus = await Bus.connect(url, client(auth), name="bench-burst", timeout=10)
    peak = [rss_mb(master_pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb(master_pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    evs = [new_event(f"hactl/event/t{i % rules}/e", "bench", {"n": i}) for i in range(events)]
    # each reaction stores 4 messages (event, fired, follow-up, done): poll the stream's own
    # count (cheap), then check every done afterwards
    base = (await bus.js.stream_info(EVENTS_STREAM)).state.messages
    start = time.perf_counter()
    for ev in evs:
        await bus.publish(ev, msg_id=ev.id)
    await bus.sync()
    published = time.perf_counter() - start
    while (await bus.js.stream_info(EVENTS_STREAM)).state.messages < base + 4 * events:
        await asyncio.sleep(0.05)
        if time.perf_counter() - start > 600:
            break
    took = time.perf_counter() - start
    cpu = (cpu_s(master_pid), cpu_s(server_pid), time.process_time())
    stop.set()
    sampler.join()
    ids = await stored_done(bus, rules)
    await bus.close()
    want = {e.id for e in evs}
    return {
        "seconds": took,
        "publish_s": published,
        "done": len(ids),
        "distinct": len(set(ids)),
        "lost": len(want - set(ids)),
        "dup": len(ids) - len(set(ids)),
        "peak_rss": peak[0],
        "cpu": cpu,
    }


def main() -> None:
    """Run both and print."""
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    nrules = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    d = Path(tempfile.mkdtemp(prefix="hactl-rbench-"))
    (d / "reactors").mkdir()
    (d / "reactors" / "bench.yaml").write_text(rules_yaml(nrules))
    auth = bench_auth(d)
    server = EmbeddedServer(
        ServerOptions(data_dir=d / "nats", auth=auth, port=-1, max_payload=4 * 1024 * 1024)
    )
    url = server.start()
    master = None
    try:

        async def prep() -> None:
            bus = await Bus.connect(url, client(auth), name="bench-prep", timeout=10)
            await ensure_stream(bus, StreamSettings(max_bytes=2 * 1024**3))  # within the store cap
            await bus.close()

        asyncio.run(prep())
        cmd = os.environ.get("HACTL_BENCH_MASTER_CMD", HACTL).split()
        master = subprocess.Popen(
            [*cmd, "--nats", url, "-q", "master", "--reactors", str(d / "reactors")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env(auth, "master"),
        )
        time.sleep(4.0)
        idle = rss_mb(master.pid)
        base = asyncio.run(baseline(url, events, auth))
        c0 = (cpu_s(master.pid), cpu_s(server.pid), time.process_time())
        res = asyncio.run(burst(url, events, nrules, master.pid, server.pid, auth))
        c1 = res.pop("cpu")  # type: ignore[assignment]
        rate, base_rate = events / res["seconds"], events / base
        print(f"reactor throughput: {events} events against {nrules} rules (real hactl master)")
        print(
            f"  reactions: {rate:,.0f}/s ({res['seconds']:.2f} s; publishing took {res['publish_s']:.2f} s)"
        )
        print(
            f"  baseline raw NATS echo of the same burst: {base_rate:,.0f}/s ({base:.2f} s);"
            f" ratio {rate / base_rate:.3f}"
        )
        print(
            f"  stored done: {res['done']} for {events} events; lost {res['lost']}, duplicated {res['dup']}"
        )
        print(f"  master RSS: idle {idle:.1f} MB, peak during the burst {res['peak_rss']:.1f} MB")
        print(
            f"  CPU during the burst: master {c1[0] - c0[0]:.2f} s, nats-server {c1[1] - c0[1]:.2f} s,"
            f" bench client {c1[2] - c0[2]:.2f} s (wall {res['seconds']:.2f} s, 2 cores)"
        )
    finally:
        if master is not None:
            if os.environ.get("HACTL_BENCH_MASTER_CMD"):
                master.send_signal(10)  # SIGUSR1: let a profiling wrapper dump its stats
                time.sleep(2)
            master.terminate()
            master.wait(30)
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    os.environ.pop("HACTL_NATS", None)
    main()
