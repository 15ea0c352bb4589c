"""``hactl cleanup`` (Pacemaker's crm_resource --cleanup): a service the minion's supervisor
gave up on is forgotten and started again at once, by a person's audited command, through the
real CLI, a real minion and a real server with production auth."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hactl.auth.perms import AUDIT_STREAM
from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.bus.jetstream import ensure_audit_stream
from hactl.minion.agent import Minion
from hactl.minion.config import parse_config
from tests.integration.conftest import NatsHandle
from tests.integration.procs import clean_env, run_cli
from tests.integration.test_minion_haproxy import _until_serving

pytestmark = pytest.mark.integration


async def _until(what: str, ok: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


def _pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


async def test_cleanup_restarts_a_given_up_service(tmp_path: Path, nats: NatsHandle) -> None:
    """Its start fails until a file exists: two deaths give it up (threshold 2, a 10-minute
    window); after `hactl cleanup ctl2 --service sleeper` it runs again within seconds, the
    answer says what was forgotten, and the audit trail holds one more record."""
    pidfile, allow = tmp_path / "sleeper.pid", tmp_path / "allow"
    start = f"[ -e {allow} ] && {{ sleep 300 >/dev/null 2>&1 & echo $! > {pidfile}; }}"
    conf = parse_config(
        f"""
id: ctl2
heartbeat_interval: 1
beacons: {{}}
services:
  sleeper: {{start: [/bin/sh, -c, "{start}"], pidfile: {pidfile}}}
supervision: {{services: [sleeper], interval: 0.1, threshold: 2, window: 600, backoff_max: 0}}
""",
        "test",
    )
    server = EmbeddedServer(
        ServerOptions(data_dir=tmp_path / "nats", auth=ServerAuth(nats.auth_dir), port=-1)
    )
    url = await asyncio.to_thread(server.start)
    stop = asyncio.Event()
    minion = Minion(conf, url, nats.auth("ctl2"))
    task = asyncio.create_task(minion.run(stop))
    master = await Bus.connect(url, nats.auth("master"), name="test-cleanup", timeout=5)
    try:
        await ensure_stream(master, StreamSettings())
        await ensure_audit_stream(master)
        await _until_serving(master, "ctl2")
        assert minion.supervisor is not None
        allow.touch()
        await asyncio.to_thread(subprocess.run, ["/bin/sh", "-c", start], check=True, timeout=10)
        await _until("seen running", lambda: minion.supervisor.snapshot()["sleeper"]["running"])
        allow.unlink()  # from now on every start fails
        for _ in range(2):
            pid = _pid(pidfile)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.5)
        await _until("given up", lambda: minion.supervisor.snapshot()["sleeper"]["given_up"])
        audited, _ = await master.stream_state(AUDIT_STREAM)

        allow.touch()
        env = clean_env(**nats.env("admin"))
        res = await asyncio.to_thread(
            run_cli, ["--nats", url, "cleanup", "ctl2", "--service", "sleeper", "--json"], env
        )
        assert res.returncode == 0, res.stderr
        [reset] = json.loads(res.stdout)["reset"]
        assert reset["service"] == "sleeper" and reset["was"]["given_up"] is True
        assert reset["was"]["deaths"] >= 2 and reset["down"] is True
        await _until("running again", lambda: _pid(pidfile) is not None, timeout=10)
        await _until("supervised", lambda: minion.supervisor.snapshot()["sleeper"]["running"])
        assert (await master.stream_state(AUDIT_STREAM))[0] == audited + 1

        refused = await asyncio.to_thread(
            run_cli, ["--nats", url, "cleanup", "ctl2", "--service", "nginx"], env
        )
        assert refused.returncode == 2 and "not supervised" in refused.stderr, refused.stderr
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await master.close()
        if (pid := _pid(pidfile)) is not None:
            os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(server.stop)
