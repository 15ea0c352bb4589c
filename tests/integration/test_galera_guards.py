"""Galera executors defend themselves: no symlink redirects the grastate rewrite, and one
datadir's start/bootstrap/position run one at a time (files in a temporary folder)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from hactl.minion.executors.base import CommandRefused, ExecContext, GaleraSettings
from hactl.minion.executors.galera import _one_at_a_time, _set_safe_to_bootstrap

GRASTATE = "# GALERA saved state\nversion: 2.1\nuuid: x\nseqno: -1\nsafe_to_bootstrap: 0\n"


def test_the_rewrite_keeps_mode_and_owner(tmp_path: Path) -> None:
    """A plain grastate.dat gets safe_to_bootstrap: 1, same mode, no temporary left."""
    (tmp_path / "grastate.dat").write_text(GRASTATE)
    os.chmod(tmp_path / "grastate.dat", 0o640)
    _set_safe_to_bootstrap(str(tmp_path))
    assert "safe_to_bootstrap: 1" in (tmp_path / "grastate.dat").read_text()
    assert (tmp_path / "grastate.dat").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grastate.dat"]


def test_a_symlinked_grastate_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    """grastate.dat -> a root file: refused; the target keeps its bytes and mode."""
    victim = tmp_path / "victim"
    victim.write_text("safe_to_bootstrap: 0\nroot only\n")
    os.chmod(victim, 0o600)
    data = tmp_path / "data"
    data.mkdir()
    (data / "grastate.dat").symlink_to(victim)
    with pytest.raises(CommandRefused, match="symlink"):
        _set_safe_to_bootstrap(str(data))
    assert victim.read_text() == "safe_to_bootstrap: 0\nroot only\n"
    assert victim.stat().st_mode & 0o777 == 0o600


def test_a_datadir_through_a_symlink_is_refused(tmp_path: Path) -> None:
    """A datadir path with a symlinked component is refused before anything is opened."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "grastate.dat").write_text(GRASTATE)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    with pytest.raises(CommandRefused, match="symlink"):
        _set_safe_to_bootstrap(str(tmp_path / "link"))
    assert "safe_to_bootstrap: 0" in (real / "grastate.dat").read_text()


async def test_two_starts_on_one_datadir_run_one_after_the_other(tmp_path: Path) -> None:
    """Concurrent Galera commands for one datadir never overlap; another datadir is free."""
    inside = 0
    most = 0

    async def body(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.05)
        inside -= 1
        return {"result": True}

    guarded = _one_at_a_time(body)
    g = GaleraSettings(defaults_file="x", datadir=str(tmp_path), socket="s", pid_file="p")
    ctx = ExecContext(minion_id="m", galera=g)
    await asyncio.gather(*(guarded(ctx, {}) for _ in range(5)))
    assert most == 1
