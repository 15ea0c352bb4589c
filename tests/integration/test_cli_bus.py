"""The CLI against a real bus: master, fire, events tail, rejections and failures."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path

import msgpack
import pytest

from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.config import pid_alive
from hactl.wire.envelope import encode, new_event
from tests.integration.conftest import NatsHandle
from tests.integration.procs import Proc, run_cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_subscribed(bus: Bus, tail: Proc, deadline_s: float = 20.0) -> None:
    """Fire probes until the tail prints one: its subscription is then live."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        await bus.publish(new_event("hactl/event/probe", "test", {}))
        await bus.sync()
        line = await asyncio.to_thread(tail.line, 0.3)
        if line and '"hactl/event/probe"' in line:
            return
    raise AssertionError("tail never showed a probe: " + tail.stderr_text())


async def test_rejected_messages_are_counted_and_nobody_dies(
    nats: NatsHandle, tmp_path: Path
) -> None:
    """Garbage, oversize and a lying origin on hactl.beacon.ctl1.vrrp: logged, counted, survived."""
    if nats.max_payload <= 1024 * 1024:
        pytest.skip("this server refuses >1 MiB publishes itself; oversize cannot reach hactl")
    base = ["--nats", nats.url, "--data-dir", str(tmp_path), "--log-format", "json"]
    master = Proc([*base, "master"])
    tail = Proc([*base, "events", "tail", "--json"])
    bus = await Bus.connect(nats.url, nats.auth(), name="test-garbage")
    try:
        ping = await asyncio.to_thread(run_cli, [*base, "ping", "--wait", "20"])
        assert ping.returncode == 0, master.stderr_text()
        await _wait_subscribed(bus, tail)
        subject = "hactl.beacon.ctl1.vrrp"
        await bus.nc.publish(subject, b"\x00\xffthis is not msgpack")
        await bus.nc.publish(subject, b"\x80" * (2 * 1024 * 1024))
        liar = new_event("hactl/event/x", "ctl2", {"state": "MASTER"}).as_dict()
        liar["tag"] = "hactl/beacon/ctl1/vrrp"
        await bus.nc.publish(subject, msgpack.packb(liar))
        good = new_event("hactl/beacon/ctl1/vrrp", "ctl1", {"state": "MASTER"})
        await bus.nc.publish(subject, encode(good))
        await bus.sync()
        line = await asyncio.to_thread(tail.line, 10)
        assert line is not None, tail.stderr_text()
        assert json.loads(line)["id"] == good.id
        stats = await asyncio.to_thread(run_cli, [*base, "stats", "--json"])
        assert stats.returncode == 0, stats.stderr
        rejected = json.loads(stats.stdout)["rejected"]
        assert rejected == {"malformed": 1, "oversize": 1, "origin_mismatch": 1}
        assert master.alive()
        assert tail.alive()
        reasons = {json.loads(x)["reason"] for x in master.err_lines if '"message_rejected"' in x}
        assert reasons == {"malformed", "oversize", "origin_mismatch"}
        tail_reasons = {
            json.loads(x)["reason"] for x in tail.err_lines if '"message_rejected"' in x
        }
        assert tail_reasons == {"malformed", "oversize", "origin_mismatch"}
    finally:
        await bus.close()
        tail.stop()
        master.stop()
    assert master.wait(10) == 0


def test_embedded_master_fire_and_tail_since(tmp_path: Path) -> None:
    """No --nats: the master embeds nats-server; fire + tail --since find it; kills spare it."""
    base = ["--data-dir", str(tmp_path), "--log-format", "json"]
    master = Proc([*base, "master", "--port", "-1"])
    try:
        ping = run_cli([*base, "ping", "--wait", "20"])
        assert ping.returncode == 0, master.stderr_text() + ping.stderr
        record = json.loads((tmp_path / "nats.json").read_text())
        assert record["pid"] == master.pid
        assert pid_alive(record["server_pid"])
        # the local admin may not speak for a minion: refused by the server, one line, exit 2
        forged = run_cli([*base, "fire", "hactl/beacon/ctl1/vrrp", "state=MASTER"])
        assert forged.returncode == 2, forged.stderr
        assert "permission denied" in forged.stderr and forged.stderr.count("\n") == 1
        added = run_cli([*base, "auth", "add-minion", "ctl1"])  # reloads the embedded server
        assert added.returncode == 0, added.stderr
        as_ctl1 = ["--creds", str(tmp_path / "auth" / "creds" / "ctl1.nk")]
        fired = run_cli(
            [*base, *as_ctl1, "fire", "hactl/beacon/ctl1/vrrp", "state=MASTER", "--json"]
        )
        assert fired.returncode == 0, fired.stderr
        event_id = json.loads(fired.stdout)["id"]
        tail = run_cli([*base, "events", "tail", "--since", "1m", "--count", "1", "--json"])
        assert tail.returncode == 0, tail.stderr
        shown = json.loads(tail.stdout)
        assert shown["id"] == event_id
        assert shown["data"] == {"state": "MASTER"}
        assert shown["minion"] == "ctl1"
        assert shown["tag"] == "hactl/beacon/ctl1/vrrp"
        # kill -9 of a live tail and of a firing process leaves the master serving.
        live_tail = Proc([*base, "events", "tail"])
        firing = Proc([*base, "fire", "hactl/event/kill", "x=1"])
        time.sleep(0.3)  # let both get going; the property is that the master survives
        live_tail.signal(signal.SIGKILL)
        firing.signal(signal.SIGKILL)
        live_tail.wait(10)
        firing.wait(10)
        assert master.alive()
        assert run_cli([*base, "ping"]).returncode == 0
        server_pid = record["server_pid"]
    finally:
        master.stop()
    assert master.wait(10) == 0
    assert not (tmp_path / "nats.json").exists()
    assert not pid_alive(server_pid)


def test_master_killed_9_takes_its_server_along(tmp_path: Path) -> None:
    """The embedded server never outlives its master, even after kill -9 (PDEATHSIG)."""
    base = ["--data-dir", str(tmp_path), "--log-format", "json"]
    master = Proc([*base, "master", "--port", "-1"])
    try:
        assert run_cli([*base, "ping", "--wait", "20"]).returncode == 0, master.stderr_text()
        server_pid = json.loads((tmp_path / "nats.json").read_text())["server_pid"]
        master.signal(signal.SIGKILL)
        master.wait(10)
        deadline = time.monotonic() + 10
        while pid_alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(server_pid)
        # The stale record is ignored: a client says there is no master rather than hanging.
        result = run_cli([*base, "events", "tail"])
        assert result.returncode == 2
        assert "no NATS to talk to" in result.stderr
    finally:
        master.stop()


def test_second_embedded_master_on_same_data_dir_refused(tmp_path: Path) -> None:
    """Two masters may not share one data dir's embedded server."""
    base = ["--data-dir", str(tmp_path), "--log-format", "json"]
    master = Proc([*base, "master", "--port", "-1"])
    try:
        assert run_cli([*base, "ping", "--wait", "20"]).returncode == 0, master.stderr_text()
        second = run_cli([*base, "master", "--port", "-1"])
        assert second.returncode == 2
        assert "already runs an embedded server" in second.stderr
    finally:
        master.stop()


def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    """An embedded server whose port is busy fails with the server's own reason, exit 2."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run_cli(["--data-dir", str(tmp_path), "master", "--port", str(port)])
    assert result.returncode == 2
    assert "address already in use" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_tail_against_stopped_server_fails_fast_with_one_line(tmp_path: Path) -> None:
    """No server on the URL: one line on stderr, exit 2, within the connect timeout."""
    started = time.monotonic()
    result = run_cli(
        [
            "--nats",
            f"nats://127.0.0.1:{_free_port()}",
            "--data-dir",
            str(tmp_path),
            "events",
            "tail",
        ],
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    assert result.stderr.startswith("hactl: error: NATS at nats://127.0.0.1:")
    assert result.stderr.count("\n") == 1, result.stderr
    print(f"tail against a stopped server failed in {elapsed:.2f}s")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["events", "tail", "--tag", "salt/**"], "bad tag"),
        (["fire", "hactl/beacon/ctl1"], "bad tag"),
        (["fire", "hactl/event/x", "oops"], "expected key=value"),
        (["events", "tail", "--since", "yesterday"], "bad --since"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    """Bad tags, pairs and times: one line, exit 2, no traceback."""
    result = run_cli(["--nats", "nats://127.0.0.1:1", "--data-dir", str(tmp_path), *args])
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_exits_130_without_traceback(nats: NatsHandle, tmp_path: Path) -> None:
    """SIGINT to a live tail ends it with 130 and no traceback."""
    tail = Proc(["--nats", nats.url, "--data-dir", str(tmp_path), "events", "tail", "--json"])
    try:
        # readiness read from the tail itself: it printed an event fired after it started (a
        # fixed sleep sent SIGINT to a tail still importing on a loaded machine)
        deadline, seen = time.monotonic() + 30, None
        while seen is None and time.monotonic() < deadline:
            assert run_cli(["--nats", nats.url, "fire", "hactl/event/x"]).returncode == 0
            seen = tail.line(1.0)
        assert seen is not None and "hactl/event/x" in seen, tail.stderr_text()
        tail.signal(signal.SIGINT)
        assert tail.wait(10) == 130
        assert "Traceback" not in tail.stderr_text()
    finally:
        tail.stop()
    assert os.environ.get("HACTL_NATS") is None or True


async def test_minion_command_runs_lean_and_stops_cleanly(nats: NatsHandle, bus: Bus) -> None:
    """`hactl minion` (lean entry) answers test.ping, publishes stop on SIGTERM and exits 0."""
    from tests.integration.test_minion_haproxy import _until_serving

    got: asyncio.Queue[str] = asyncio.Queue()

    async def on_event(e: object) -> None:
        await got.put(e.tag)  # type: ignore[attr-defined]

    await ensure_stream(bus, StreamSettings())  # the master's job; the minion persists into it
    await bus.subscribe("hactl/minion/itcli/*", on_event)
    proc = Proc(["--nats", nats.url, "--log-format", "json", "minion", "--id", "itcli"])
    try:
        await _until_serving(bus, "itcli")
        reply = await bus.request("itcli", "test.ping", timeout=5)
        assert reply.ok and reply.result["id"] == "itcli"
        proc.signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 15) == 0
        tags = []
        while not got.empty() or "hactl/minion/itcli/stop" not in tags:
            try:
                tags.append(await asyncio.wait_for(got.get(), 5))
            except TimeoutError:
                raise AssertionError(f"{tags} {proc.stderr_text()[-1500:]}") from None
        assert tags[0] == "hactl/minion/itcli/start" and tags[-1] == "hactl/minion/itcli/stop"
        assert "Traceback" not in proc.stderr_text()
    finally:
        proc.stop()
