"""``hactl fire TAG [key=value ...]``: publish one event, stored in JetStream (acked)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from hactl.bus import Bus
from hactl.cli.runner import print_json, run, settings_of
from hactl.config import resolve_connection
from hactl.errors import UsageError
from hactl.wire.envelope import new_event
from hactl.wire.tags import MASTER_ID, expected_origin, validate_tag


def parse_pairs(pairs: list[str], data_json: str | None) -> dict[str, Any]:
    """``key=value`` words (values read as JSON when they parse, else as strings) over a base."""
    data: dict[str, Any] = {}
    if data_json:
        try:
            base = json.loads(data_json)
        except ValueError as exc:
            raise UsageError(f"--data-json is not JSON: {exc}") from None
        if not isinstance(base, dict):
            raise UsageError("--data-json must be a JSON object")
        data.update(base)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {pair!r}")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        data[key] = value
    return data


def fire(
    ctx: typer.Context,
    tag: Annotated[str, typer.Argument(help="Event tag, e.g. hactl/beacon/ctl1/vrrp")],
    pairs: Annotated[list[str] | None, typer.Argument(help="key=value data (JSON values)")] = None,
    data_json: Annotated[
        str | None, typer.Option("--data-json", help="Data as a JSON object")
    ] = None,
    minion: Annotated[
        str | None, typer.Option(help="Origin id (default: the one the tag names)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fired event as JSON")] = False,
) -> None:
    """Fire one event onto the bus and wait until JetStream has stored it."""
    settings = settings_of(ctx)

    async def body() -> None:
        validate_tag(tag)
        data = parse_pairs(pairs or [], data_json)
        origin = minion or expected_origin(tag) or MASTER_ID
        event = new_event(tag, origin, data)
        bus = await Bus.connect(
            *resolve_connection(settings), name="hactl-fire", timeout=settings.connect_timeout
        )
        try:
            if tag.startswith("hactl/event/"):  # a person's event: audited before it is sent
                await bus.audit("fire", {"tag": tag, "id": event.id})
            seq = await bus.persist(event)
        finally:
            await bus.close()
        if as_json:
            print_json({**event.as_json(), "seq": seq})
        else:
            typer.echo(f"fired {event.tag} id={event.id} seq={seq}")

    run(body())
