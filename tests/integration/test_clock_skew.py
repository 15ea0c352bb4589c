"""Liveness on the server's clock: real minions under Debian's faketime, one 60 s behind and
one 60 s ahead, against a real master. Neither is declared lost while it heartbeats, both
raise clock-skew events, and killed they are declared lost on time."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import pytest

from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.wire.envelope import Event
from tests.integration.conftest import NatsHandle
from tests.integration.procs import Proc, clean_env
from tests.integration.test_reactor_masters import _wait_log

# the library faketime(1) preloads, set directly: the wrapper forks, so a signal to its pid
# would not reach the minion
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
pytestmark = pytest.mark.skipif(not LIBFAKETIME.exists(), reason="needs Debian's faketime")

LOST_AFTER = 3.0
RULE = "- name: noop\n  on: hactl/event/never\n  do: [{event.fire: {tag: hactl/event/x}}]\n"


async def test_skewed_minions_are_timed_by_the_server(tmp_path: Path, nats: NatsHandle) -> None:
    """-60 s and +60 s clocks: skew reported, never lost while heartbeating, lost when killed."""
    rules = tmp_path / "reactors"
    rules.mkdir()
    (rules / "noop.yaml").write_text(RULE)
    server = EmbeddedServer(
        ServerOptions(data_dir=tmp_path / "nats", auth=ServerAuth(nats.auth_dir), port=-1)
    )
    url = await asyncio.to_thread(server.start)
    procs: list[Proc] = []
    bus = await Bus.connect(url, nats.auth(), name="test-skew", timeout=5)
    seen: list[Event] = []

    async def on_event(e: Event) -> None:
        seen.append(e)

    try:
        await ensure_stream(bus, StreamSettings())
        await bus.subscribe("hactl/minion/*/lost", on_event)
        await bus.subscribe("hactl/minion/*/skew", on_event)
        master = Proc(
            [
                "--nats",
                url,
                "--log-format",
                "json",
                "master",
                "--reactors",
                str(rules),
                "--lost-after",
                f"{LOST_AFTER:g}s",
            ],
            env=clean_env(**nats.env("master")),
        )
        procs.append(master)
        await _wait_log(master, "reactor_started")
        minions = {}
        # ctl3 keeps the right time and stays up: with every minion silent at once the master
        # gives no verdict (it may be the one that cannot hear)
        for node, offset in (("ctl1", "-60s"), ("ctl2", "+60s"), ("ctl3", "+0s")):
            cfg = tmp_path / f"{node}.yaml"
            cfg.write_text(f"id: {node}\nheartbeat_interval: 0.5\nbeacons: {{}}\n")
            minions[node] = Proc(
                ["--nats", url, "minion", "--config", str(cfg)],
                env=clean_env(**nats.env(node), FAKETIME=offset, LD_PRELOAD=str(LIBFAKETIME)),
            )
            procs.append(minions[node])

        def skews() -> dict[str, float]:
            return {
                e.tag.split("/")[2]: e.data["skew_s"]
                for e in seen
                if e.tag.endswith("/skew") and e.data["skewed"]
            }

        for _ in range(300):
            if len(skews()) == 2:
                break
            await asyncio.sleep(0.1)
        found = skews()
        await asyncio.sleep(1.0)  # ctl3's clock is right: it must not be reported
        found = skews()
        assert set(found) == {"ctl1", "ctl2"}, (seen, master.stderr_text()[-3000:])
        assert -62 < found["ctl1"] < -58 and 58 < found["ctl2"] < 62, found
        await asyncio.sleep(4 * LOST_AFTER)  # heartbeating: never lost, whatever their clocks
        assert not [e for e in seen if e.tag.endswith("/lost")], seen

        for node in ("ctl1", "ctl2"):
            minions[node].signal(signal.SIGKILL)
        for _ in range(300):
            if len([e for e in seen if e.tag.endswith("/lost")]) == 2:
                break
            await asyncio.sleep(0.1)
        lost = {e.tag.split("/")[2]: e.data["silent_s"] for e in seen if e.tag.endswith("/lost")}
        assert set(lost) == {"ctl1", "ctl2"}, (seen, master.stderr_text()[-3000:])
        # timed by the server: declared after lost_after, within the liveness loop's second
        assert all(LOST_AFTER <= s < LOST_AFTER + 3 for s in lost.values()), lost
        print(f"\nskew reported {found}; declared lost after {lost} s (lost_after {LOST_AFTER})")
    finally:
        for proc in procs:
            proc.stop()
        with contextlib.suppress(Exception):
            await bus.close()
        await asyncio.to_thread(server.stop)
