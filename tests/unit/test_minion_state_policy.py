"""state.apply refuses what the minion did not allow, before touching anything."""

from __future__ import annotations

import asyncio
from typing import Any

from minion.executors.base import ExecContext
from minion.executors.state import state_apply


def _apply(ctx: ExecContext, res: dict[str, Any]) -> dict[str, Any]:
    out = asyncio.run(state_apply(ctx, {"plan": [res], "test": False, "redact": []}))
    return dict(out["resources"][0])


def test_a_sysctl_outside_the_allowlist_is_refused() -> None:
    """kernel.core_pattern=|/path is root code execution: refused, nothing written."""
    res = {"id": "core", "type": "sysctl.present",
           "args": {"name": "kernel.core_pattern", "value": "|/tmp/x"}}  # fmt: skip
    out = _apply(ExecContext(minion_id="m"), res)
    assert out["result"] is False and "allowlist" in out["comment"]


def test_a_unit_not_configured_is_refused_under_systemd_too() -> None:
    """service.running poweroff.target: refused although systemd could start anything."""
    res = {"id": "off", "type": "service.running", "args": {"name": "poweroff.target"}}
    out = _apply(ExecContext(minion_id="m", use_systemd=True), res)
    assert out["result"] is False and "not configured on this minion" in out["comment"]
