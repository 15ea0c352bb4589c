"""Config checks run without root: ``haproxy -c`` and ``keepalived -t`` parse a file the
master sent, and a parser that runs code (a ``lua-load``, a script a check registers) must not
run it as root even if the content policy missed it.

A minion running as root runs every check command through ``setpriv`` (util-linux, in every
Debian): as ``check_user`` (minion.yaml, default ``nobody``), no supplementary groups, no new
privileges, and one capability, ``CAP_DAC_READ_SEARCH``, so the checker can read what the
config names (certificates, maps, error files: often root's own 0600 files) but write nothing
root owns, signal no root process and gain nothing back by ``exec``. The staged file itself is
handed over as a copy in a private directory owned by that user (mode 0700, the copy 0400):
keepalived tests readability with ``access()``, which ignores capabilities for a non-root
real uid. The copy and its directory are removed when the check ends.

``check_user: root`` turns the sandbox off (the check runs as the minion does); a minion that
is not root runs checks as itself.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from hactl.minion.executors.base import CommandRefused

SETPRIV = "/usr/bin/setpriv"
#: the one capability a checker keeps: read any file (never write one)
KEPT_CAPABILITY = "dac_read_search"


@dataclass(frozen=True, slots=True)
class Sandbox:
    """Who a check runs as; ``None`` from :func:`sandbox_for` means as the minion itself."""

    user: str
    uid: int
    gid: int

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run by setpriv as this user with only CAP_DAC_READ_SEARCH."""
        cap = KEPT_CAPABILITY
        return [
            SETPRIV,
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--no-new-privs",
            f"--inh-caps=-all,+{cap}",
            f"--ambient-caps=+{cap}",
            f"--bounding-set=-all,+{cap}",
            "--",
            *argv,
        ]


def sandbox_for(check_user: str, check: str) -> Sandbox | None:
    """The sandbox for a check by ``check_user`` (None: run as the minion). Refused, never run
    as root instead, when the user does not exist or setpriv is missing."""
    if os.geteuid() != 0 or check_user == "root":
        return None
    try:
        entry = pwd.getpwnam(check_user)
    except KeyError:
        raise CommandRefused(
            "file.apply",
            f"check {check!r}: check_user {check_user!r} does not exist (minion.yaml); "
            "the check is not run as root instead",
        ) from None
    if entry.pw_uid == 0:
        return None
    if not os.access(SETPRIV, os.X_OK):
        raise CommandRefused(
            "file.apply",
            f"check {check!r}: {SETPRIV} is missing (package util-linux), so it cannot run as "
            f"{check_user}; it is not run as root instead",
        )
    return Sandbox(check_user, entry.pw_uid, entry.pw_gid)


@contextlib.contextmanager
def readable_copy(sandbox: Sandbox, content: bytes, name: str) -> Iterator[str]:
    """A copy of ``content`` that only the sandbox user (and root) can read, in a fresh
    private directory; both removed afterwards."""
    folder = tempfile.mkdtemp(prefix="hactl-check-")
    try:
        path = os.path.join(folder, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            os.fchown(fh.fileno(), sandbox.uid, sandbox.gid)
        os.chown(folder, sandbox.uid, sandbox.gid)  # mkdtemp made it 0700
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # fd-based: links inside are not followed
