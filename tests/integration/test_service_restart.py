"""service.restart without a restart command: stop, wait for the pid to exit (a pidfd), start
-- the repair of a paused RabbitMQ broker in a place without systemd (the lab)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hactl.minion.executors import dispatch
from hactl.minion.executors.base import ExecContext, ServiceCommands
from hactl.wire.commands import CommandRequest


async def _pid(svc: ServiceCommands, not_: int | None = None) -> int:
    """The live pid in the pid file (other than ``not_``), waited for while the old one
    exits."""
    for _ in range(100):
        pid = svc.pid()
        if pid is not None and pid != not_:
            return pid
        await asyncio.sleep(0.05)
    raise AssertionError("no new pid in the pid file within 5 s")


def _gone(pid: int) -> bool:
    """Exited (no process, or a zombie nobody has reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


async def test_restart_is_stop_then_start_on_a_new_pid(tmp_path: Path) -> None:
    """A configured service with start and stop only: restart stops the old process, waits
    for it to be gone, starts a new one; a hung one (SIGSTOP) is killed after the grace and
    replaced; an unconfigured service is refused."""
    pidfile = tmp_path / "svc.pid"
    start = [
        sys.executable,
        "-m",
        "hactl.lab.launch",
        "--log",
        str(tmp_path / "svc.log"),
        "--pidfile",
        str(pidfile),
        "--",
        "/bin/sleep",
        "300",
    ]
    svc = ServiceCommands(start=tuple(start), stop=("kill", "-TERM", "{pid}"), pidfile=str(pidfile))
    ctx = ExecContext(minion_id="t", services={"sleeper": svc}, command_timeout=2)
    try:
        first = await dispatch(ctx, CommandRequest("service.start", {"name": "sleeper"}))
        assert first.ok and first.result["result"], first
        old = svc.pid()  # the launcher wrote it before the start command returned
        assert old is not None and pidfile.read_text().strip() == str(old)
        again = await dispatch(ctx, CommandRequest("service.restart", {"name": "sleeper"}))
        assert again.ok and again.result["changes"] == {"restart": "sleeper"}, again
        new = await _pid(svc, not_=old)
        assert new != old and _gone(old)
        hung = new
        os.kill(hung, signal.SIGSTOP)  # it cannot handle the stop: killed after the grace
        third = await dispatch(ctx, CommandRequest("service.restart", {"name": "sleeper"}))
        assert third.ok and third.result["result"], third
        assert _gone(hung) and await _pid(svc, not_=hung) != hung
        refused = await dispatch(ctx, CommandRequest("service.restart", {"name": "other"}))
        assert not refused.ok and "not configured" in refused.error_message
    finally:
        if (pid := svc.pid()) is not None:
            os.kill(pid, signal.SIGKILL)


async def test_a_start_that_does_not_stay_up_is_reported_failed(tmp_path: Path) -> None:
    """A start command that exits 0 is no evidence: a daemon that quits at once (keepalived
    seeing the pid files of a killed copy's children) is reported failed, never started a
    second time (a slow daemon would get two copies); one that runs is ok."""
    pidfile = tmp_path / "svc.pid"
    daemon = f"/bin/sleep 300 >/dev/null 2>&1 & echo $! > {pidfile}"
    runs = ServiceCommands(start=("/bin/sh", "-c", daemon), pidfile=str(pidfile))
    quits = ServiceCommands(start=("/bin/true",), pidfile=str(tmp_path / "never.pid"))
    ctx = ExecContext(minion_id="t", services={"runs": runs, "quits": quits}, command_timeout=5)
    try:
        bad = await dispatch(ctx, CommandRequest("service.start", {"name": "quits"}))
        assert bad.ok and bad.result["result"] is False, bad
        assert "does not run" in bad.result["comment"]
        got = await dispatch(ctx, CommandRequest("service.start", {"name": "runs"}))
        assert got.ok and got.result["result"] is True and runs.pid() is not None, got
    finally:
        if (pid := runs.pid()) is not None:
            os.kill(pid, signal.SIGKILL)


def _zombie() -> subprocess.Popen[bytes]:
    """A child that has exited and is not reaped: a zombie until ``wait()``."""
    child = subprocess.Popen(["/bin/true"])
    deadline = time.monotonic() + 5
    while _state(child.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _state(child.pid) == "Z"
    return child


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


async def test_a_start_waits_for_the_previous_copys_zombies(tmp_path: Path) -> None:
    """A daemon that, like keepalived, quits when any of its pid files names a process
    (kill -0, which a zombie passes) is started only once the killed copy's processes are
    reaped: with ``pidfiles`` listing its children the start waits and succeeds; without,
    the same start is reported failed."""
    pidfile, child_file = tmp_path / "main.pid", tmp_path / "child.pid"
    daemon = (
        f'for f in {pidfile} {child_file}; do [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null'
        f" && exit 0; done; /bin/sleep 300 >/dev/null 2>&1 & echo $! > {pidfile}"
    )
    start = ("/bin/sh", "-c", daemon)
    waits = ServiceCommands(start=start, pidfile=str(pidfile), pidfiles=(str(child_file),))
    blind = ServiceCommands(start=start, pidfile=str(pidfile))
    ctx = ExecContext(minion_id="t", services={"waits": waits, "blind": blind}, command_timeout=5)
    zombie = _zombie()
    try:
        child_file.write_text(f"{zombie.pid}\n")
        bad = await dispatch(ctx, CommandRequest("service.start", {"name": "blind"}))
        assert bad.ok and bad.result["result"] is False, bad
        reap = asyncio.get_running_loop().call_later(0.5, zombie.wait)
        got = await dispatch(ctx, CommandRequest("service.start", {"name": "waits"}))
        assert got.ok and got.result["result"] is True and waits.pid() is not None, got
        assert not Path(f"/proc/{zombie.pid}").exists()  # started only after the reap
        reap.cancel()
    finally:
        zombie.wait()
        if (pid := waits.pid()) is not None:
            os.kill(pid, signal.SIGKILL)


async def test_a_planned_stop_runs_pre_stop_first_and_holds_until_the_daemon_is_gone(
    tmp_path: Path,
) -> None:
    """``service.stop`` and ``service.restart`` run the service's ``pre_stop`` (RabbitMQ's
    drain) while the daemon still runs, and the stop's supervision hold lasts until the
    daemon -- which takes 1 s to exit after SIGTERM -- is gone; a failing pre_stop does not
    stop the stop; ``pre_stop: false`` skips it."""
    pidfile, marks = tmp_path / "svc.pid", tmp_path / "pre_stop.log"
    slow = (
        "import signal,sys,time; "
        "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1), sys.exit(0))); time.sleep(300)"
    )
    start = [sys.executable, "-m", "hactl.lab.launch", "--log", str(tmp_path / "svc.log"),
             "--pidfile", str(pidfile), "--", sys.executable, "-c", slow]  # fmt: skip
    pre = ("/bin/sh", "-c", f"echo drained {{pid}} >> {marks}; exit 3")
    svc = ServiceCommands(
        start=tuple(start), stop=("kill", "-TERM", "{pid}"), pidfile=str(pidfile), pre_stop=pre
    )
    ctx = ExecContext(minion_id="t", services={"slow": svc}, command_timeout=10)
    held_while_alive: list[str] = []
    try:
        assert (await dispatch(ctx, CommandRequest("service.start", {"name": "slow"}))).ok
        first = await _pid(svc)
        restart = await dispatch(ctx, CommandRequest("service.restart", {"name": "slow"}))
        assert restart.ok and restart.result["changes"] == {"restart": "slow"}, restart
        between = await _pid(svc, not_=first)
        assert marks.read_text().split() == ["drained", str(first)]
        plain = CommandRequest("service.restart", {"name": "slow", "pre_stop": False})
        assert (await dispatch(ctx, plain)).ok  # a paused broker's repair: no drain
        second = await _pid(svc, not_=between)
        assert marks.read_text().split() == ["drained", str(first)]

        async def watch() -> None:  # what a supervisor would see while the stop runs
            while not _gone(second):
                held_while_alive.append(ctx.planned.held("slow"))
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        stop = await dispatch(ctx, CommandRequest("service.stop", {"name": "slow"}))
        await watcher
        assert stop.ok and stop.result["changes"] == {"stop": "slow"}, stop
        assert _gone(second) and svc.pid() is None
        assert held_while_alive and set(held_while_alive) == {"service.stop"}, held_while_alive
        assert ctx.planned.held("slow") == "" and ctx.planned.ended("slow") is False
        assert marks.read_text().split() == ["drained", str(first), "drained", str(second)]
    finally:
        if (pid := svc.pid()) is not None:
            os.kill(pid, signal.SIGKILL)


def _cmdline_soon(pid: int) -> str:
    """The program's command line: the kernel closes the launcher's close-on-exec pipe inside
    execve a moment before it fills the new image's arguments, so an empty read is retried."""
    for _ in range(100):
        if text := Path(f"/proc/{pid}/cmdline").read_bytes().decode():
            return text
        time.sleep(0.01)
    return ""


def test_a_launch_whose_exec_fails_exits_127_and_writes_no_pid(tmp_path: Path) -> None:
    """A start whose program cannot be executed fails (127, the shell's "not found") and names
    no pid, rather than returning success for a copy that never ran."""
    pidfile = tmp_path / "p.pid"
    argv = [sys.executable, "-m", "hactl.lab.launch", "--log", str(tmp_path / "p.log"),
            "--pidfile", str(pidfile), "--", str(tmp_path / "no-such-program")]  # fmt: skip
    assert subprocess.run(argv, timeout=10, check=False).returncode == 127
    assert not pidfile.exists()
    assert "no-such-program" in (tmp_path / "p.log").read_text()


def test_the_launcher_records_the_pid_before_it_returns(tmp_path: Path) -> None:
    """``hactl.lab.launch --pidfile`` returns only once its pid file names the program, as a
    service manager knows the pid when a start ends (a singleton keeper that looked 0.5 s
    after a start on a busy lab found no pid file and counted its copy as failed): 20 starts,
    each read back at once."""
    pidfile = tmp_path / "p.pid"
    for _ in range(20):
        argv = [sys.executable, "-m", "hactl.lab.launch", "--log", str(tmp_path / "p.log"),
                "--pidfile", str(pidfile), "--", "/bin/sleep", "300"]  # fmt: skip
        assert subprocess.run(argv, timeout=10, check=False).returncode == 0
        there = pidfile.exists()  # read at once: no wait
        for _ in range(100):  # (a late one is still waited for, so that it is ended below)
            if pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.05)
        pid = int(pidfile.read_text())
        try:
            assert there, "the start returned before its pid file was written"
            os.kill(pid, 0)
            assert "sleep" in _cmdline_soon(pid)
        finally:
            os.kill(pid, signal.SIGKILL)
        pidfile.unlink()
