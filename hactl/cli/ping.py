"""``hactl ping``: round-trip a test.ping to a minion or the master."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer

from hactl.bus import Bus
from hactl.cli.runner import fail, print_json, run, settings_of
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


async def _ask_all(
    settings: Settings, targets: list[str], wait: float
) -> list[tuple[str, CommandReply | HactlError, float]]:
    """Every target at once, each until its own answer or the deadline: (target, reply or
    the error it ended with, seconds)."""

    async def one(target: str) -> tuple[str, CommandReply | HactlError, float]:
        started = time.monotonic()
        try:
            reply: CommandReply | HactlError = await _ask(settings, target, "test.ping", wait)
        except HactlError as exc:
            reply = exc
        return target, reply, time.monotonic() - started

    return list(await asyncio.gather(*(one(t) for t in targets)))


def ping(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None,
        typer.Argument(help="Minion ids, or 'master' (default: the master); all at once"),
    ] = None,
    wait: Annotated[float, typer.Option(help="Keep trying for this many seconds")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """Round-trip a test.ping command to each target (use --wait in scripts to wait until
    each answers). Exit 1 when a target answered with an error, 2 when one never answered."""
    settings = settings_of(ctx)
    names = list(dict.fromkeys(targets or [MASTER_ID]))
    for name in names:
        validate_id(name)
    results = run(_ask_all(settings, names, wait))
    rows = []
    for target, reply, seconds in results:
        if isinstance(reply, HactlError):
            rows.append({"target": target, "ok": False, "error": str(reply), "answered": False})
        else:
            rows.append(
                {
                    "target": target,
                    "ok": reply.ok,
                    "rtt_ms": round(seconds * 1000, 3),
                    "answered": True,
                    **dict(reply.result),
                    **({} if reply.ok else {"error": reply.error_message}),
                }
            )
    if as_json:
        print_json(rows[0] if len(rows) == 1 else {"pings": rows})
    else:
        for row in rows:
            if row["ok"]:
                typer.echo(f"{row['target']}: pong ({row['rtt_ms']:.1f} ms)")
            elif row["answered"]:
                typer.echo(f"{row['target']}: {row['error']}")
    silent = [reply for _, reply, _ in results if isinstance(reply, HactlError)]
    if len(silent) == 1:
        fail(silent[0])
    if silent:  # one line naming every target that never answered
        fail(HactlError("; ".join(str(e) for e in silent)))
    if not all(r["ok"] for r in rows):
        raise typer.Exit(1)
