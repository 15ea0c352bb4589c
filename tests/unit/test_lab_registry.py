"""Which registered lab is left over: owner gone and ephemeral, or owner gone and nothing runs."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hactl.lab import registry


@pytest.fixture(autouse=True)
def _registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "REGISTRY", tmp_path / "labs")


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(child.stdout)


def test_a_lab_of_a_live_owner_is_never_stale() -> None:
    """This process's own lab is not left over, whatever runs in it."""
    entry = registry.register("hx1", "10.99.7", ("ctl1",), ephemeral=True, folder=None)
    assert entry.owner == os.getpid() and entry.owner_alive()
    assert not registry.stale(entry, lambda _e: False)
    assert registry.entries() == [entry]


def test_a_reused_pid_is_not_the_owner() -> None:
    """Same pid, another start time: the owner is gone (a pid the kernel gave someone else)."""
    entry = registry.register("hx2", "10.99.7", ("ctl1",), ephemeral=False, folder=Path("/x"))
    reused = dataclasses.replace(entry, owner_start=entry.owner_start + 1)
    assert not reused.owner_alive()
    assert registry.stale(reused, lambda _e: False) and not registry.stale(reused, lambda _e: True)


def test_an_ephemeral_lab_of_a_dead_owner_is_stale_even_with_daemons() -> None:
    """A test's lab whose run died is left over even when its daemons still run; a lasting
    (`hactl lab up`) lab is left over only once nothing of it runs."""
    dead = _dead_pid()
    test_lab = registry.Entry("hx3", "10.99.7", ("ctl1",), dead, 1, True)
    lasting = registry.Entry("hx4", "10.99.8", ("ctl1",), dead, 1, False, "/srv/lab")
    assert registry.stale(test_lab, lambda _e: True)
    assert not registry.stale(lasting, lambda _e: True)
    assert registry.stale(lasting, lambda _e: False)


def test_unregister_and_folder() -> None:
    """An entry keeps where lab.json is; unregister forgets the lab; junk is skipped."""
    registry.register("hx5", "10.99.7", ("ctl1", "ctl2"), ephemeral=True, folder=Path("/tmp/lab"))
    (registry.REGISTRY / "junk.json").write_text("{not json")
    [entry] = registry.entries()
    assert entry.dir == "/tmp/lab" and entry.nodes == ("ctl1", "ctl2")
    registry.unregister("hx5")
    assert registry.entries() == []
