"""A master's stop is bounded: what is stuck is named, and the process ends on its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

# a master's stop path, armed as SIGTERM arms it, with the bounds shortened; the loop then
# waits on what never ends: a task (`stuck`) or a blocking call on the loop itself
_CHILD = """
import asyncio, time
from hactl.log import configure
import hactl.master.daemon as daemon

configure(fmt="json")
daemon.STOP_SLOW_S, daemon.STOP_DEADLINE_S = 0.5, 2.0

async def never() -> None:
    await asyncio.Event().wait()

def blocked_in_a_call() -> None:
    time.sleep(60)

async def main(how: str) -> None:
    loop = asyncio.get_running_loop()
    daemon._arm_stop_deadline(loop)
    if how == "task":
        await asyncio.create_task(never(), name="stuck")
    else:
        await asyncio.sleep(0.01)
        blocked_in_a_call()

asyncio.run(main("{how}"))
"""


def _run(how: str) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD).replace("{how}", how)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def test_a_stop_stuck_on_a_task_names_it_and_exits() -> None:
    """A stop waiting on a task that never ends: the task is logged with where it waits, then
    every thread's stack is written and the process exits 1 (no SIGKILL needed)."""
    rc, out, took = _run("task")
    assert rc == 1, out
    assert '"event": "master_stop_slow"' in out and '"task": "stuck"' in out, out
    assert "never" in out  # the frame it waits in
    assert "Timeout (0:00:02)!" in out and "Thread 0x" in out, out
    assert took < 25, took


def test_a_stop_blocked_in_a_call_dumps_the_stack_and_exits() -> None:
    """A loop blocked in a synchronous call (no task can run): faulthandler still ends it,
    and its stack shows the call."""
    rc, out, _ = _run("call")
    assert rc == 1, out
    assert "blocked_in_a_call" in out and "Thread 0x" in out, out
