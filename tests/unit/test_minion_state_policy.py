"""state.apply refuses what the minion did not allow, before touching anything."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hactl.minion.executors.base import CommandRefused, ExecContext
from hactl.minion.executors.state import state_apply


def _apply(ctx: ExecContext, *plan: dict[str, Any]) -> dict[str, Any]:
    return dict(asyncio.run(state_apply(ctx, {"plan": list(plan), "test": False, "redact": []})))


def _file(path: Path, contents: Any) -> dict[str, Any]:
    return {
        "id": path.name,
        "type": "file.managed",
        "args": {"path": str(path), "contents": contents},
    }


def test_a_sysctl_outside_the_allowlist_is_refused() -> None:
    """kernel.core_pattern=|/path is root code execution: refused, nothing written."""
    res = {
        "id": "core",
        "type": "sysctl.present",
        "args": {"name": "kernel.core_pattern", "value": "|/tmp/x"},
    }
    with pytest.raises(CommandRefused, match="allowlist"):
        _apply(ExecContext(minion_id="m"), res)


def test_a_unit_not_configured_is_refused_under_systemd_too() -> None:
    """service.running poweroff.target: refused although systemd could start anything."""
    res = {"id": "off", "type": "service.running", "args": {"name": "poweroff.target"}}
    with pytest.raises(CommandRefused, match="not configured on this minion"):
        _apply(ExecContext(minion_id="m", use_systemd=True), res)


def test_wrong_typed_contents_refuse_the_whole_plan(tmp_path: Path) -> None:
    """contents: 4096 (would be a zero-filled file) refuses the plan; the file before it in
    the plan is not written either."""
    ctx = ExecContext(minion_id="m", allowed_roots=(tmp_path,))
    with pytest.raises(CommandRefused, match="contents must be str, got int"):
        _apply(ctx, _file(tmp_path / "good.cfg", "x\n"), _file(tmp_path / "bad.cfg", 4096))
    assert list(tmp_path.iterdir()) == []


def test_an_exec_directive_later_in_the_plan_refuses_it_all(tmp_path: Path) -> None:
    """A keepalived notify script in the second file: refused before the first is written."""
    ctx = ExecContext(minion_id="m", allowed_roots=(tmp_path,))
    evil = "vrrp_instance VI_1 {\n    notify_master /tmp/evil.sh\n}\n"
    with pytest.raises(CommandRefused, match="content policy"):
        _apply(ctx, _file(tmp_path / "good.cfg", "x\n"), _file(tmp_path / "k.conf", evil))
    assert list(tmp_path.iterdir()) == []


def test_unknown_resource_types_and_arguments_are_refused(tmp_path: Path) -> None:
    """A resource type or argument the minion does not know refuses the plan."""
    ctx = ExecContext(minion_id="m", allowed_roots=(tmp_path,))
    with pytest.raises(CommandRefused, match="unknown resource type"):
        _apply(ctx, {"id": "x", "type": "cmd.run", "args": {"name": "id"}})
    bad = _file(tmp_path / "a", "x")
    bad["args"]["shell"] = "/bin/sh"
    with pytest.raises(CommandRefused, match="unknown argument"):
        _apply(ctx, bad)
