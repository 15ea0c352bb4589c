"""``hactl events tail``: the live bus, or a replay from JetStream that then follows."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from hactl.bus import Bus
from hactl.bus.history import stream_for
from hactl.cli.runner import print_json, run, settings_of, until_interrupted
from hactl.config import resolve_connection
from hactl.errors import UsageError
from hactl.timeparse import parse_since
from hactl.wire.envelope import Event
from hactl.wire.tags import TagGlob

app = typer.Typer(help="Watch the event bus.", no_args_is_help=True)


def render_text(event: Event) -> str:
    """Salt-like: the tag, then the data (with _stamp, _minion, _id) as indented JSON."""
    try:
        stamp = datetime.fromtimestamp(event.ts, UTC).isoformat(timespec="milliseconds")
        stamp = stamp.replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):  # a sender's absurd clock is shown, not fatal
        stamp = f"(ts {event.ts!r} out of range)"
    body = {
        **event.as_json()["data"],
        "_stamp": stamp,
        "_minion": event.minion,
        "_id": event.id,
    }
    return f"{event.tag}\t{json.dumps(body, indent=4, sort_keys=True)}"


@app.command()
def tail(
    ctx: typer.Context,
    tag: Annotated[
        str, typer.Option("--tag", "-t", help="Tag glob (* within a level, ** levels)")
    ] = "hactl/**",
    since: Annotated[
        str | None,
        typer.Option(help="Replay from JetStream first: a duration ago (10m) or an ISO time"),
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="Exit after N events")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Print events as they arrive (live by default; --since replays stored ones first)."""
    settings = settings_of(ctx)

    async def body() -> None:
        glob = TagGlob.parse(tag)
        start = parse_since(since, datetime.now(UTC)) if since else None
        bus = await Bus.connect(
            *resolve_connection(settings),
            name="hactl-tail",
            timeout=settings.connect_timeout,
            reconnect=True,
        )
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=10_000)

        async def on_event(event: Event) -> None:
            await queue.put(event)

        console = Console(highlight=True, soft_wrap=True) if sys.stdout.isatty() else None
        try:
            if start is not None:
                await bus.replay(glob, start, on_event, stream_for(glob))
            else:
                await bus.subscribe(glob, on_event)
            seen = 0
            while count is None or seen < count:
                event = await queue.get()
                seen += 1
                if as_json:
                    print_json(event.as_json())
                elif console is not None:
                    console.print(render_text(event), markup=False)
                else:
                    sys.stdout.write(render_text(event) + "\n")
                    sys.stdout.flush()
        finally:
            await bus.close(drain=False)  # a reader: nothing to flush, and Ctrl-C is prompt

    if count is not None and count < 1:
        raise UsageError("--count must be at least 1")
    if sig := run(until_interrupted(body())):
        raise typer.Exit(128 + sig)  # 130 for Ctrl-C, 143 for SIGTERM
