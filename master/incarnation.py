"""This master's run on its data dir: the value it writes to the leader key, and its dead
predecessor's, which it may take back (decision 59).

A master that restarts in place (``systemctl restart``, a crash and ``Restart=on-failure``)
used to wait for the leader key it held itself to expire (``LEADER_TTL``, 15 s) whenever its
clean stop could not give it back -- its NATS server cut off (the lab's holder cut while the
master restarts: the singleton down 16.5 s instead of 10.5 s), or a kill -9. Now the master
that holds its data dir's lock (``master.lock``, an ``flock`` released by the kernel when the
process ends, whatever the way) records its leader-key value in ``leader-token``; the next
master to hold that lock reads it back, and when the leader key still holds exactly that
value, the master that wrote it is gone, so the key is taken back at once.

A second master on the same data dir (tests, a mistake) is not refused: it runs without the
lock, with a value of its own, and takes nothing back. The singleton leases stay safe either
way: a master that starts leading counts every lease from then (master/singletons/manager.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from hactl.log import get_logger
from hactl.wire.tags import MASTER_ID

log = get_logger("hactl.master")
LOCK_FILE = "master.lock"
LEADER_RECORD = "leader-token"  # the leader-key value of the last run (not a secret)


@dataclass(frozen=True, slots=True)
class Incarnation:
    """The leader-key value of this run, and the one its dead predecessor wrote (None: no
    predecessor known, or this run does not hold the data dir's lock)."""

    token: bytes
    previous: bytes | None = None

    @classmethod
    def fresh(cls) -> Incarnation:
        """A value of its own and nothing to take back (no data dir, or its lock is held)."""
        return cls(f"{MASTER_ID}-{secrets.token_hex(8)}".encode())


class Claim:
    """The data dir's lock, held for the life of the process (:func:`claim`)."""

    def __init__(self, incarnation: Incarnation, fd: int | None) -> None:
        self.incarnation = incarnation
        self._fd = fd

    @property
    def held(self) -> bool:
        """Whether this run holds the data dir's lock."""
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up (the kernel does it anyway when the process ends)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def claim(data_dir: Path) -> Claim:
    """Take ``data_dir``'s master lock without waiting. Held: this run's token is recorded and
    its predecessor's returned. Held by another living master, or the dir not writable: a
    fresh incarnation, said in the log, and nothing taken back."""
    fresh = Incarnation.fresh()
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        log.warning("master_data_dir_unusable", data_dir=str(data_dir), error=str(exc))
        return Claim(fresh, None)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        log.warning(
            "master_data_dir_shared",
            data_dir=str(data_dir),
            detail="another master holds its lock: this one takes no leader key back",
        )
        return Claim(fresh, None)
    token_file = data_dir / LEADER_RECORD
    try:
        previous: bytes | None = token_file.read_bytes().strip() or None
    except OSError:
        previous = None
    tmp = token_file.with_suffix(".tmp")
    try:
        tmp.write_bytes(fresh.token)
        tmp.chmod(0o600)
        tmp.replace(token_file)
    except OSError as exc:  # no record: the next run takes nothing back, nothing worse
        log.warning("master_token_unrecorded", data_dir=str(data_dir), error=str(exc))
    return Claim(Incarnation(fresh.token, previous), fd)
