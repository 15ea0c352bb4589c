"""Small commands: ``version``, ``ping``, ``stats``."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hactl import __version__
from hactl.bus import Bus
from hactl.cli.runner import print_json, run, settings_of
from hactl.config import Settings, resolve_connection
from hactl.errors import CommandError, ConfigError, HactlError
from hactl.wire.commands import CommandReply
from hactl.wire.tags import MASTER_ID, validate_id


def version(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """Print hactl's version."""
    if as_json:
        print_json({"version": __version__})
    else:
        typer.echo(f"hactl {__version__}")


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


def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """The master's counters: events seen by kind, messages rejected by reason, the stream."""
    settings = settings_of(ctx)
    reply = run(_ask(settings, MASTER_ID, "master.stats", 0.0))
    if not reply.ok:
        typer.echo(f"master: {reply.error_message}", err=True)
        raise typer.Exit(1)
    result = dict(reply.result)
    if as_json:
        print_json(result)
        return
    table = Table(title=f"hactl master (pid {result.get('pid')}, up {result.get('uptime_s')} s)")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for kind, n in sorted(dict(result.get("events", {})).items()):
        table.add_row(f"events {kind}", str(n))
    for reason, n in sorted(dict(result.get("rejected", {})).items()):
        table.add_row(f"rejected {reason}", str(n))
    table.add_row("handler errors", str(result.get("handler_errors", 0)))
    stream = dict(result.get("stream", {}))
    table.add_row(f"stream {stream.get('name')} messages", str(stream.get("messages", "?")))
    Console().print(table)
