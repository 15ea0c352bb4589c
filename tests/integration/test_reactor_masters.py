"""Two masters share the reactor's durable consumer: kill -9 one mid-burst, nothing is lost
and every event is done exactly once (counted in the stream); a master killed and started again
on its data dir takes its own leader key back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats.js.errors
from nats.js import api

from hactl.bus import EVENTS_STREAM, Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.wire.envelope import Event, decode, new_event
from tests.integration.conftest import NatsHandle
from tests.integration.procs import Proc

N = 10_000
RULE = """
- name: burst
  on: hactl/event/burst/*
  do:
    - event.fire: {tag: hactl/event/burst-out/x, data: {n: "{{ event.data.n }}"}}
"""


async def _wait_log(proc: Proc, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.stderr_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not logged: {proc.stderr_text()[-2000:]}")


async def _subject_count(bus: Bus, subject: str) -> int:
    info = await bus.js.stream_info(EVENTS_STREAM, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def _stored(bus: Bus, subject: str) -> list[Event]:
    config = api.ConsumerConfig(ack_policy=api.AckPolicy.NONE)
    sub = await bus.js.pull_subscribe(subject, stream=EVENTS_STREAM, config=config)
    out: list[Event] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                return out
            out += [decode(m.data, m.subject) for m in msgs]
    finally:
        await sub.unsubscribe()


@contextlib.asynccontextmanager
async def _server_with_rules(
    tmp_path: Path, nats: NatsHandle, rules_yaml: str
) -> AsyncIterator[tuple[str, Path, Bus]]:
    """A fresh embedded server with the event stream, a rules folder holding ``rules_yaml``,
    and a client bus: (url, rules folder, bus); stopped and closed after."""
    rules = tmp_path / "reactors"
    rules.mkdir()
    (rules / "rules.yaml").write_text(rules_yaml)
    server = EmbeddedServer(
        ServerOptions(data_dir=tmp_path / "nats", auth=ServerAuth(nats.auth_dir), port=-1)
    )
    url = await asyncio.to_thread(server.start)
    bus = await Bus.connect(url, nats.auth(), name="test-masters", timeout=5)
    try:
        await ensure_stream(bus, StreamSettings())
        yield url, rules, bus
    finally:
        await bus.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(server.stop)


async def test_kill_one_master_mid_burst_exactly_once(tmp_path: Path, nats: NatsHandle) -> None:
    """10,000 events, two masters, one killed -9 midway: 10,000 done, one per event."""
    masters: list[Proc] = []
    async with _server_with_rules(tmp_path, nats, RULE) as (url, rules, bus):
        try:
            args = [
                "--nats",
                url,
                "--log-format",
                "json",
                "master",
                "--reactors",
                str(rules),
                "--ack-wait",
                "3s",
            ]
            for _ in range(2):
                masters.append(Proc(args))
                await _wait_log(masters[-1], "reactor_started")
            done_live = 0
            quarter = asyncio.Event()

            async def on_done(_: Event) -> None:
                nonlocal done_live
                done_live += 1
                if done_live >= N // 4:
                    quarter.set()

            await bus.subscribe("hactl/reactor/burst/done", on_done)
            ids = []
            for i in range(N):  # a burst: both masters get a backlog
                ev = new_event(f"hactl/event/burst/b{i % 7}", "test", {"n": i})
                ids.append(ev.id)
                await bus.publish(ev, msg_id=ev.id)
            await bus.sync()
            await asyncio.wait_for(quarter.wait(), 60)
            os.kill(masters[0].pid, signal.SIGKILL)  # mid-burst, with delivered, unacked work
            killed_at = done_live
            deadline = time.monotonic() + 90
            # poll the stream's own count (no event says "all done")
            while time.monotonic() < deadline:
                if await _subject_count(bus, "hactl.reactor.burst.done") >= N:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(4.0)  # past ack_wait: any late redelivery would show up now
            stored = await _stored(bus, "hactl.reactor.burst.done")
            handled = [e.data["event_id"] for e in stored]
            assert len(handled) == N, f"{len(handled)} done stored for {N} events"
            assert sorted(handled) == sorted(ids), "every event done exactly once"
            outs = await _subject_count(bus, "hactl.event.burst-out.x")
            assert outs == N, f"{outs} follow-up events for {N}"
            assert masters[1].alive()
            stats = await bus.request("master", "master.stats", timeout=5)  # only B answers now
            redelivered = stats.result["reactor"].get("redelivered", 0)
            assert redelivered > 0, "the killed master's unacked events were redelivered to B"
            assert killed_at < N
            print(
                f"\nmaster A killed -9 after {killed_at} done; done events seen live (redeliveries"
                f" included): {done_live}; redelivered to the survivor: {redelivered};"
                f" stored in the stream: {len(handled)}"
            )
        finally:
            for m in masters:
                m.stop()


SLOW = """
- name: slow
  on: hactl/event/slow/*
  debounce: 3s
  do:
    - event.fire: {tag: hactl/event/slow-out/x, data: {}}
"""


async def test_an_event_longer_than_ack_wait_is_not_redelivered_to_its_master(
    tmp_path: Path, nats: NatsHandle
) -> None:
    """A debounce of 3 s under an ack wait of 1 s: the master says the event is in progress,
    so it is delivered once, fires once after one debounce and nothing is 'debounced'."""
    async with _server_with_rules(tmp_path, nats, SLOW) as (url, rules, bus):
        args = ["--nats", url, "--log-format", "json", "master", "--reactors", str(rules)]
        master = Proc([*args, "--ack-wait", "1s"])
        try:
            await _wait_log(master, "reactor_started")
            ev = new_event("hactl/event/slow/a", "test", {})
            await bus.publish(ev, msg_id=ev.id)
            deadline = time.monotonic() + 30
            while await _subject_count(bus, "hactl.reactor.slow.done") < 1:
                assert time.monotonic() < deadline, master.stderr_text()[-2000:]
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)  # past two more ack waits: a late redelivery shows now
            assert await _subject_count(bus, "hactl.reactor.slow.fired") == 1
            assert await _subject_count(bus, "hactl.reactor.slow.suppressed") == 0
            stats = await bus.request("master", "master.stats", timeout=5)
            assert stats.result["reactor"].get("redelivered", 0) == 0, stats.result["reactor"]
        finally:
            master.stop()


async def test_a_master_killed_and_started_on_its_data_dir_takes_its_lead_back(
    tmp_path: Path, nats: NatsHandle
) -> None:
    """Decision 59: the leading master killed -9 and started again on its data dir takes its
    own leader key back (its log says so) instead of waiting out the key's 15 s TTL, while a
    second master on another data dir, there all along, never leads."""
    async with _server_with_rules(tmp_path, nats, RULE) as (url, rules, _bus):

        def args(data: str) -> list[str]:
            return [
                "--nats",
                url,
                "--data-dir",
                str(tmp_path / data),
                "--log-format",
                "json",
                "master",
                "--reactors",
                str(rules),
            ]

        first, other = Proc(args("a")), None
        again = None
        try:
            await _wait_log(first, '"reconciler_leading"')
            record = tmp_path / "a" / "leader-token"
            written = record.read_bytes()
            other = Proc(args("b"))
            await _wait_log(other, "reactor_started")
            first.signal(signal.SIGKILL)
            first.popen.wait(10)
            again = Proc(args("a"))
            await _wait_log(again, "reconciler_lead_taken_back")
            await _wait_log(again, '"reconciler_leading"')
            assert written and record.read_bytes() not in (b"", written)  # the new run's own
            await asyncio.sleep(2.0)  # past the other's next look at the key
            assert '"reconciler_leading"' not in other.stderr_text()
        finally:
            for p in (first, other, again):
                if p is not None:
                    p.stop()
