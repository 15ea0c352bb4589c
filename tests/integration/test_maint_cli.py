"""``hactl maint`` against a real server with auth: an admin sets, lists and ends a window
(audited); an operator key is refused and nothing is stored."""

from __future__ import annotations

import asyncio
import json

from hactl.auth.perms import AUDIT_STREAM, MAINT_BUCKET
from hactl.bus import Bus
from hactl.wire.envelope import Event
from tests.integration.conftest import NatsHandle
from tests.integration.procs import clean_env, run_cli


def test_maint_on_list_off_is_audited_and_operators_are_refused(nats: NatsHandle) -> None:
    """on -> list shows it active -> off -> gone; the audit stream has both actions."""
    admin = clean_env(**nats.env("admin"))
    base = ["--nats", nats.url]
    on = run_cli(
        [
            *base,
            "maint",
            "on",
            "ctl2",
            "-c",
            "galera",
            "--for",
            "2h",
            "--reason",
            "disk swap",
            "--json",
        ],
        env=admin,
    )
    assert on.returncode == 0, on.stderr
    window = json.loads(on.stdout)
    assert (window["node"], window["component"], window["reason"]) == (
        "ctl2",
        "galera",
        "disk swap",
    )
    listed = json.loads(run_cli([*base, "maint", "list", "--json"], env=admin).stdout)
    assert [w["active"] for w in listed["windows"] if w["node"] == "ctl2"] == [True]
    refused = run_cli(
        [*base, "maint", "on", "ctl3", "--reason", "x"], env=clean_env(**nats.env("operator"))
    )
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    bad = run_cli([*base, "maint", "on", "ctl3", "-c", "shell", "--reason", "x"], env=admin)
    assert bad.returncode == 2 and "component" in bad.stderr
    off = run_cli([*base, "maint", "off", "ctl2", "-c", "galera"], env=admin)
    assert off.returncode == 0, off.stderr
    after = json.loads(run_cli([*base, "maint", "list", "--json"], env=admin).stdout)
    assert not [w for w in after["windows"] if w["node"] in ("ctl2", "ctl3")]

    async def audited() -> list[str]:
        bus = await Bus.connect(nats.url, nats.auth(), name="maint-audit", timeout=5)
        seen: list[str] = []

        async def on_event(e: Event) -> None:
            seen.append(e.tag.rsplit("/", 1)[1])

        from datetime import UTC, datetime, timedelta

        try:
            await bus.replay(
                "hactl/audit/**", datetime.now(UTC) - timedelta(minutes=2), on_event, AUDIT_STREAM
            )
            await bus.read_bucket(MAINT_BUCKET)
        finally:
            await bus.close()
        return seen

    actions = asyncio.run(audited())
    assert "maint-on" in actions and "maint-off" in actions, actions
