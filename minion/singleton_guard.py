"""The per-singleton guard: stops a singleton's copy when its lease runs out, whatever the
minion does (``python -m hactl.minion.singleton_guard CONFIG``).

Pacemaker will not run a resource elsewhere until the old node is *fenced* (STONITH, sbd): a
node that merely stopped talking may still run it. hactl's holder stops its own copy at the
end of its lease; this guard makes that independent of the minion process. The minion starts
one guard per running copy, in its own session (under systemd, in its own transient unit, so
stopping the minion's unit does not take it along), and after each acknowledged renewal
rewrites one file with the instant (CLOCK_MONOTONIC, shared by every process of the host) by
which the copy must begin to stop. The guard reads that file ten times a second:

- the instant has passed (the minion is hung -- SIGSTOP --, dead, or cannot renew): it stops
  the service (its stop command or SIGTERM, SIGKILL after half of ``grace``), writes
  ``<name>.fenced`` and exits;
- the file is gone (the minion stopped the copy itself): it exits.

It imports nothing of hactl and holds no connection: it cannot be starved by the bus.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TICK = 0.1


def _pid(pidfile: str) -> int | None:
    try:
        pid = int(Path(pidfile).read_text().split()[0])
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return None if state == "Z" else pid


def _say(line: str) -> None:
    print(f"{time.time():.3f} {time.monotonic():.3f} {line}", flush=True)


def fence(cfg: dict[str, Any]) -> None:
    """Stop the copy now, bounded by ``grace`` seconds."""
    grace = float(cfg.get("grace", 2.0))
    pidfile = str(cfg.get("pidfile", ""))
    unit = str(cfg.get("unit", ""))
    stop = [str(a) for a in cfg.get("stop") or []]
    pid = _pid(pidfile) if pidfile else None
    argv = (
        ["systemctl", "stop", unit] if unit else [a.replace("{pid}", str(pid or "")) for a in stop]
    )
    if argv and (unit or pid):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(argv, timeout=grace / 2, check=False, capture_output=True)
    elif pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + grace / 2
    while pid and _pid(pidfile) == pid and time.monotonic() < end:
        time.sleep(0.02)
    if pid and _pid(pidfile) == pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _say(f"SIGKILL {pid}")


def main() -> None:
    """Run until the lease runs out (fence) or the minion ends the copy (exit)."""
    cfg = json.loads(Path(sys.argv[1]).read_text())
    stop_at_file = Path(str(cfg["stop_at_file"]))
    Path(str(cfg["guard_pidfile"])).write_text(f"{os.getpid()}\n")
    _say(f"guarding {cfg['name']}")
    while True:
        try:
            stop_at = float(stop_at_file.read_text())
        except FileNotFoundError:
            _say("copy ended by the minion: guard exits")
            return
        except (OSError, ValueError):
            stop_at = 0.0  # unreadable: the lease cannot be shown current
        if time.monotonic() >= stop_at:
            _say(f"lease ran out ({time.monotonic() - stop_at:.2f} s ago): fencing")
            fence(cfg)
            Path(str(cfg["fenced_file"])).write_text(f"{time.time():.3f}\n")
            with contextlib.suppress(FileNotFoundError):
                stop_at_file.unlink()
            _say("fenced")
            return
        time.sleep(TICK)


if __name__ == "__main__":
    main()
