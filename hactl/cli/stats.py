"""``hactl stats``: the master's counters."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hactl.cli.ping import _ask
from hactl.cli.runner import print_json, run, settings_of
from hactl.wire.tags import MASTER_ID


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
