"""``hactl singleton list|move``: the services that run on exactly one node (docs/singletons.md).

``list`` reads KV ``HACTL_SINGLETONS`` (specs from ``hactl apply``, lease records from the
leading master): each singleton's holder, its fencing token and since when. ``move`` asks the
master (``singleton.move``, admins only) to move one: the holder stops its copy and gives the
lease back, then the target gets it -- Pacemaker's ``crm resource move``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hactl.auth.perms import SINGLETON_BUCKET
from hactl.bus import Bus
from hactl.cli.runner import print_json, run, settings_of
from hactl.config import Settings, resolve_connection
from hactl.errors import BusError, DecodeError, HactlError
from hactl.wire.singleton import (
    LEASE_PREFIX,
    MOVE,
    SPEC_PREFIX,
    decode_lease,
    decode_spec,
)
from hactl.wire.tags import MASTER_ID

app = typer.Typer(
    help="Services that run on exactly one node, under a lease.", no_args_is_help=True
)


class SingletonError(HactlError):
    """The master refused a singleton command (the reason is its message)."""


async def _connect(settings: Settings) -> Bus:
    url, auth = resolve_connection(settings)
    return await Bus.connect(url, auth, name="hactl-singleton", timeout=settings.connect_timeout)


def rows(values: dict[str, bytes]) -> tuple[list[dict[str, Any]], list[str]]:
    """Each singleton (spec + lease record) from the bucket's values, and what was unreadable."""
    specs, leases, problems = {}, {}, []
    for key, raw in sorted(values.items()):
        prefix, _, name = key.partition(".")
        try:
            if prefix == SPEC_PREFIX:
                specs[name] = decode_spec(raw)
            elif prefix == LEASE_PREFIX:
                leases[name] = decode_lease(raw)
        except DecodeError as exc:
            problems.append(f"{key}: {exc.detail}")
    out = []
    for name, spec in sorted(specs.items()):
        rec = leases.get(name)
        out.append(
            {
                "name": name,
                "service": spec.service,
                "nodes": list(spec.nodes),
                "holder": rec.holder if rec else "",
                "since": rec.since if rec and rec.holder else None,
                "lease_s": spec.lease,
                "failures_threshold": spec.failures,
            }
        )
    return out, problems


async def read(bus: Bus) -> tuple[list[dict[str, Any]], list[str]]:
    """The singletons as ``hactl status`` and ``list`` show them ([] before any master ran)."""
    try:
        values = await bus.read_bucket(SINGLETON_BUCKET)
    except BusError as exc:
        if "no KV bucket" in exc.detail:
            return [], []
        raise
    return rows(values)


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """Each singleton: where it runs, since when, where it may run."""
    settings = settings_of(ctx)

    async def body() -> tuple[list[dict[str, Any]], list[str]]:
        bus = await _connect(settings)
        try:
            return await read(bus)
        finally:
            await bus.close()

    found, problems = run(body())
    if as_json:
        print_json({"singletons": found, "problems": problems})
        return
    table = Table(title="Singletons")
    for col in ("name", "service", "holder", "since", "nodes", "lease"):
        table.add_column(col)
    for r in found:
        since = "-" if not r["since"] else _stamp(r["since"])
        holder = r["holder"] or "[red]nobody[/]"
        table.add_row(
            r["name"], r["service"], holder, since, ",".join(r["nodes"]), f"{r['lease_s']:g}s"
        )
    Console().print(table)
    for p in problems:
        typer.echo(f"ignored: {p}", err=True)


@app.command("move")
def move(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The singleton")],
    to: Annotated[str, typer.Option("--to", help="The node to run it on")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the master's answer as JSON")
    ] = False,
) -> None:
    """Move a singleton: the holder stops its copy and gives the lease back; then ``--to``."""
    settings = settings_of(ctx)

    async def body() -> dict[str, Any]:
        bus = await _connect(settings)
        try:
            await bus.audit("singleton-move", {"name": name, "to": to})
            reply = await bus.request(MASTER_ID, MOVE, {"name": name, "to": to}, timeout=10)
        finally:
            await bus.close()
        if not reply.ok:
            raise SingletonError(reply.error_message or "refused")
        return dict(reply.result)

    result = run(body())
    if as_json:
        print_json(result)
    else:
        held = result.get("holder") or "nobody"
        typer.echo(f"moving {name}: {held} stops it and gives the lease back, then {to} runs it")


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
