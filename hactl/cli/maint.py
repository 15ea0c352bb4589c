"""``hactl maint on|off|list``: planned work hactl leaves alone (KV ``HACTL_MAINT``).

Set by a person's identity (an admin key) and audited before it is stored; while a window is
on, the reactor suppresses every rule for that scope (reason ``maintenance``) and the minion's
supervisor does not restart the covered services. A window with ``--for`` ends by itself.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hactl.auth.perms import MAINT_BUCKET
from hactl.bus import Bus, kv_bucket
from hactl.cli.runner import fail, print_json, run, settings_of
from hactl.config import Settings, resolve_connection
from hactl.errors import BusError, DecodeError, HactlError, UsageError
from hactl.timeparse import parse_duration
from hactl.wire.maint import ALL, COMPONENTS, Maintenance, as_dict, encode, maint_key, parse_records

app = typer.Typer(
    help="Maintenance windows: planned work hactl leaves alone.", no_args_is_help=True
)

NodeArg = Annotated[str, typer.Argument(help="A node id, or 'all' for the whole cluster")]
ComponentOpt = Annotated[
    str, typer.Option("--component", "-c", help=f"One of {', '.join(COMPONENTS)}")
]


async def _connect(settings: Settings) -> Bus:
    url, auth = resolve_connection(settings)
    return await Bus.connect(url, auth, name="hactl-maint", timeout=settings.connect_timeout)


def _key(node: str, component: str) -> str:
    try:
        return maint_key(node, component)
    except DecodeError as exc:
        fail(UsageError(exc.detail))


@app.command("on")
def on(
    ctx: typer.Context,
    node: NodeArg,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (shown and audited)")],
    component: ComponentOpt = ALL,
    duration: Annotated[
        str | None, typer.Option("--for", help="Ends by itself after this long (2h, 30m)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the window as JSON")] = False,
) -> None:
    """Put a node (or one component of it, or the whole cluster) under maintenance."""
    settings = settings_of(ctx)
    key = _key(node, component)
    if not reason.strip() or len(reason) > 500:
        fail(UsageError("--reason: 1-500 characters"))
    now = time.time()
    try:
        until = now + parse_duration(duration) if duration else None
    except HactlError as exc:
        fail(exc)

    async def body() -> Maintenance:
        bus = await _connect(settings)
        try:
            record = Maintenance(node, component, reason.strip(), bus.identity, now, until)
            await bus.audit("maint-on", as_dict(record))  # not taken if it cannot be audited
            kv = await kv_bucket(bus, MAINT_BUCKET)
            await kv.put(key, encode(record))
            return record
        finally:
            await bus.close()

    record = run(body())
    if as_json:
        print_json(as_dict(record))
    else:
        ends = "until turned off" if until is None else f"until {_stamp(until)}"
        typer.echo(f"maintenance on: {node} {component} ({ends}): {record.reason}")


@app.command("off")
def off(ctx: typer.Context, node: NodeArg, component: ComponentOpt = ALL) -> None:
    """End a maintenance window."""
    settings = settings_of(ctx)
    key = _key(node, component)

    async def body() -> None:
        bus = await _connect(settings)
        try:
            await bus.audit("maint-off", {"node": node, "component": component})
            kv = await kv_bucket(bus, MAINT_BUCKET)
            await kv.delete(key)
        finally:
            await bus.close()

    run(body())
    typer.echo(f"maintenance off: {node} {component}")


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """The maintenance windows, active and expired."""
    settings = settings_of(ctx)

    async def body() -> tuple[list[Maintenance], list[str]]:
        bus = await _connect(settings)
        try:
            try:
                values = await bus.read_bucket(MAINT_BUCKET)
            except BusError as exc:
                if "no KV bucket" in exc.detail:
                    return [], []
                raise
            return parse_records(values)
        finally:
            await bus.close()

    records, problems = run(body())
    now = time.time()
    if as_json:
        print_json(
            {
                "windows": [{**as_dict(r), "active": r.active(now)} for r in records],
                "problems": problems,
            }
        )
        return
    table = Table(title="Maintenance")
    for col in ("node", "component", "state", "until", "reason", "by"):
        table.add_column(col)
    for r in records:
        state = "[yellow]on[/]" if r.active(now) else "expired"
        until = "-" if r.until is None else _stamp(r.until)
        table.add_row(r.node, r.component, state, until, r.reason, r.by[:12])
    Console().print(table)
    for p in problems:
        typer.echo(f"ignored: {p}", err=True)


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
