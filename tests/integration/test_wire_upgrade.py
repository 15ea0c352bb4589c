"""Two adjacent builds on one bus, as during a rolling upgrade of hactl itself: the previous
release (built from git, :data:`PREVIOUS`) as master with this tree's minion, then the
reverse. Each time the minion's events reach the master's reactor and the master's command
runs on the minion (a rule on the minion's start event runs ``minion.ping``). Then a peer two
versions ahead is refused with one line naming both versions."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import msgpack
import pytest

from hactl.bus import Bus
from hactl.errors import CommandError
from hactl.wire.commands import CommandRequest, decode_reply, encode_request
from hactl.wire.envelope import Event
from hactl.wire.tags import command_subject
from hactl.wire.version import READS, WRITES
from tests.integration.conftest import NatsHandle

ROOT = Path(__file__).resolve().parents[2]
#: the release before this tree's wire window (bump with each release): it writes and reads
#: wire version 1 only
PREVIOUS = "836eadb309deb6b7b0bae0d98d651f76f573cf3c"
NODE = "ctl3"
RULES = f"""
- name: upgrade-ping
  on: hactl/minion/{NODE}/start
  do:
    - minion.ping: {{node: {NODE}}}
"""


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's ``hactl`` package, laid out as its wheel has it (setup.py's
    package map), from git: a folder to put first on PYTHONPATH."""
    have = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if have.returncode != 0:
        pytest.skip(f"the previous release {PREVIOUS[:10]} is not in this clone's history")
    top = tmp_path_factory.mktemp("previous")
    archive = top / "src.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", PREVIOUS, "hactl", "master", "minion"],
            stdout=out,
            timeout=60,
            check=True,
        )
    src = top / "src"
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    site = top / "site"
    shutil.copytree(src / "hactl", site / "hactl")
    for folder in ("master", "minion"):
        shutil.copytree(src / folder, site / "hactl" / folder)
    return site


def _start(
    build: Path | None, args: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """``python -m hactl ARGS`` of ``build`` (None: this tree), from a folder that is not
    the checkout, so nothing else is imported."""
    extra = {"PYTHONPATH": str(build)} if build is not None else {}
    return subprocess.Popen(
        [sys.executable, "-m", "hactl", *args],
        cwd=log.parent,
        env={"PATH": "/usr/bin:/bin", "HOME": str(log.parent), **env, **extra},
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def _pinged(bus: Bus, done: asyncio.Queue[Event], timeout: float) -> Event:
    while True:
        event = await asyncio.wait_for(done.get(), timeout)
        if event.tag == "hactl/reactor/upgrade-ping/done":
            return event


@pytest.mark.parametrize("old", ["master", "minion"])
async def test_adjacent_builds_interoperate(
    nats: NatsHandle, bus: Bus, previous: Path, tmp_path: Path, old: str
) -> None:
    """The previous release as ``old`` and this tree as the other: the minion's start event
    reaches the master's rule, the master's test.ping runs on the minion, its done says so."""
    (tmp_path / "reactors").mkdir()
    (tmp_path / "reactors" / "upgrade.yaml").write_text(RULES)
    check = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import hactl.wire.envelope as e; print(e.__file__)"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(previous), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert check.stdout.startswith(str(previous)), check.stdout  # really the old code
    done: asyncio.Queue[Event] = asyncio.Queue()
    await bus.subscribe("hactl/reactor/upgrade-ping/*", done.put)
    master = _start(
        previous if old == "master" else None,
        [
            "--nats",
            nats.url,
            "--data-dir",
            str(tmp_path / "m"),
            "master",
            "--port",
            "-1",
            "--reactors",
            str(tmp_path / "reactors"),
        ],
        nats.env("master"),
        tmp_path / "master.log",
    )
    minion = None
    try:
        await asyncio.sleep(0)  # the master subscribes before the minion starts
        for _ in range(200):
            if "master_ready" in (tmp_path / "master.log").read_text(errors="replace"):
                break
            assert master.poll() is None, (tmp_path / "master.log").read_text()[-3000:]
            await asyncio.sleep(0.1)
        (tmp_path / "minion.yaml").write_text(f"id: {NODE}\nheartbeat_interval: 1\nbeacons: {{}}\n")
        minion = _start(
            previous if old == "minion" else None,
            ["--nats", nats.url, "minion", "--config", str(tmp_path / "minion.yaml")],
            nats.env(NODE),
            tmp_path / "minion.log",
        )
        try:
            event = await _pinged(bus, done, 40)
        except TimeoutError:
            logs = {p.name: p.read_text()[-2500:] for p in tmp_path.glob("*.log")}
            raise AssertionError(f"no done from the rule: {logs}") from None
        [result] = event.data["results"]
        assert result["action"] == "minion.ping" and result["ok"] is True, event.data
        assert result["node"] == NODE and result["pong"] is True, event.data
    finally:
        if minion is not None:
            _stop(minion)
        _stop(master)


async def test_a_peer_two_versions_ahead_is_refused_in_one_line(
    nats: NatsHandle, tmp_path: Path
) -> None:
    """A running minion of this tree, asked by an admin in wire version WRITES+2 (two releases
    ahead): refused, the reply one line naming both versions; asked in WRITES+1 with a field
    it does not know: it runs the command."""
    (tmp_path / "minion.yaml").write_text(f"id: {NODE}\nheartbeat_interval: 1\nbeacons: {{}}\n")
    minion = _start(
        None,
        ["--nats", nats.url, "minion", "--config", str(tmp_path / "minion.yaml")],
        nats.env(NODE),
        tmp_path / "minion.log",
    )
    admin = await Bus.connect(nats.url, nats.auth("admin"), name="it-upgrade-admin")
    try:
        body = msgpack.unpackb(encode_request(CommandRequest(cmd="test.ping", args={})))
        for _ in range(100):  # until the minion serves (no responders before that)
            try:
                await admin.request(NODE, "test.ping", {}, timeout=1)
                break
            except CommandError:
                await asyncio.sleep(0.1)
        raw = await admin.request_raw(
            command_subject(NODE), msgpack.packb({**body, "v": WRITES + 2}), timeout=5
        )
        refused = decode_reply(raw)
        line = refused.error_message
        assert not refused.ok and refused.error_type == "DecodeError", refused
        assert f"wire version {WRITES + 2}" in line and f"reads {READS[0]}-{READS[1]}" in line
        assert f"writes {WRITES}" in line and "\n" not in line
        newer = {**body, "v": WRITES + 1, "deadline": 5.0}
        answered = decode_reply(
            await admin.request_raw(command_subject(NODE), msgpack.packb(newer), timeout=5)
        )
        assert answered.ok and answered.result["id"] == NODE, answered
    finally:
        await admin.close()
        _stop(minion)
