"""Ask keepalived for its instances' states: what a minion that (re)starts cannot hear.

keepalived writes a state to the notify FIFO only when it *changes*. A minion restarted
while keepalived runs on (an upgrade of hactl, a crash of the minion) therefore knew no state
and reported ``UNKNOWN``; the reconciler took that for unhealthy and drained the node's API
servers on every HAProxy until some transition happened -- possibly never (lab, issue 26).
keepalived dumps its state as JSON on its ``JSON`` signal (``keepalived --signum=JSON``;
Debian's build has ``--enable-json``) into ``/tmp/keepalived.json``; the vrrp beacon asks
for it while an instance's state is unknown, and takes the state, effective priority and
time of the last transition from it. The file name is fixed, so the signal and the read are
done under a lock (several keepalived in one machine's namespaces, as in the lab, would
otherwise overwrite each other's dump between the signal and the read). The parser is pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import subprocess
import time
from dataclasses import dataclass
from functools import cache

JSON_FILE = "/tmp/keepalived.json"  # noqa: S108  # keepalived's own fixed path (KA_TMP_DIR)
#: keepalived's VRRP_STATE_* numbers (vrrp.h); INIT and DELETED are not a state to report
STATES = {1: "BACKUP", 2: "MASTER", 3: "FAULT"}
WAIT = 2.0


@dataclass(frozen=True, slots=True)
class InstanceState:
    """One instance as keepalived's dump has it."""

    state: str
    priority: int
    since: float


def parse_dump(text: str) -> dict[str, InstanceState]:
    """``/tmp/keepalived.json`` -> {instance: state}; instances in INIT are left out."""
    out: dict[str, InstanceState] = {}
    for entry in json.loads(text):
        data = entry.get("data", {}) if isinstance(entry, dict) else {}
        number = data.get("state")
        name, state = data.get("iname"), STATES.get(number) if isinstance(number, int) else None
        if not isinstance(name, str) or state is None:
            continue
        out[name] = InstanceState(
            state, int(data.get("effective_priority", 0)), float(data.get("last_transition", 0))
        )
    return out


@cache
def json_signal() -> int | None:
    """The signal keepalived dumps JSON on (its own answer), None without keepalived."""
    try:
        res = subprocess.run(
            ["keepalived", "--signum=JSON"], capture_output=True, text=True, timeout=5, check=False
        )
        return int(res.stdout.strip()) if res.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _pid(pidfile: str) -> int | None:
    try:
        pid = int(open(pidfile).read().split()[0])  # noqa: SIM115  # one read, closed by GC
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def _dump(pidfile: str, path: str) -> dict[str, InstanceState]:
    """Signal keepalived and read its dump, under the lock; {} when it cannot be had."""
    signum, pid = json_signal(), _pid(pidfile)
    if signum is None or pid is None:
        return {}
    # O_NOFOLLOW: a link planted in /tmp is refused, never followed by root
    fd = os.open(f"{path}.hactl-lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as lock:
        # bounded: a holder that hangs (a SIGSTOPped minion) must not park this thread for
        # ever -- parked threads would fill the minion's executor and stall it
        deadline = time.monotonic() + WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return {}
                time.sleep(0.02)
        before = _mtime(path)
        os.kill(pid, signum)
        deadline = time.monotonic() + WAIT
        while _mtime(path) == before:
            if time.monotonic() > deadline:
                return {}
            time.sleep(0.01)
        time.sleep(0.02)  # written in one go, but let a slow writer finish
        # /tmp is world-writable: only root's own file, never through a link
        with (
            contextlib.suppress(OSError, ValueError),
            os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW)) as fh,
        ):
            if os.fstat(fh.fileno()).st_uid != 0:
                return {}
            return parse_dump(fh.read())
    return {}


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


async def ask(pidfile: str, path: str = JSON_FILE) -> dict[str, InstanceState]:
    """keepalived's current instance states (in a thread: it waits for the dump)."""
    return await asyncio.to_thread(_dump, pidfile, path)
