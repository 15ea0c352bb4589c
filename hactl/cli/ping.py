"""``hactl ping``: round-trip a test.ping to a minion or the master."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer

from hactl.bus import Bus
from hactl.cli.runner import print_json, run, settings_of
from hactl.config import Settings, resolve_connection
from hactl.errors import CommandError, ConfigError, HactlError
from hactl.wire.commands import CommandReply
from hactl.wire.tags import MASTER_ID, validate_id


async def _ask(settings: Settings, target: str, cmd: str, wait: float) -> CommandReply:
    """Send one command; with ``wait`` > 0 keep trying (bus and target) until the deadline."""
    deadline = time.monotonic() + wait
    while True:
        try:
            bus = await Bus.connect(
                *resolve_connection(settings), name="hactl-cli", timeout=settings.connect_timeout
            )
            try:
                return await bus.request(target, cmd, timeout=max(1.0, settings.connect_timeout))
            finally:
                await bus.close()
        except (ConfigError, CommandError, HactlError):
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)


def ping(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A minion id, or 'master'")] = MASTER_ID,
    wait: Annotated[float, typer.Option(help="Keep trying for this many seconds")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """Round-trip a test.ping command (use --wait in scripts to wait for a master)."""
    settings = settings_of(ctx)
    validate_id(target)
    started = time.monotonic()
    reply = run(_ask(settings, target, "test.ping", wait))
    rtt_ms = (time.monotonic() - started) * 1000
    if as_json:
        print_json(
            {"target": target, "ok": reply.ok, "rtt_ms": round(rtt_ms, 3), **dict(reply.result)}
        )
    else:
        typer.echo(
            f"{target}: pong ({rtt_ms:.1f} ms)" if reply.ok else f"{target}: {reply.error_message}"
        )
    if not reply.ok:
        raise typer.Exit(1)
