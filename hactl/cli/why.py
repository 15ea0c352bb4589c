"""``hactl why EVENT_ID``: the causal chain from one event through rules to what they did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.tree import Tree

from hactl.bus import EVENTS_STREAM, Bus
from hactl.bus.history import find, scan, stored
from hactl.cli.history import row
from hactl.cli.runner import fail, print_json, run, settings_of
from hactl.config import resolve_connection
from hactl.errors import UsageError
from hactl.timeparse import parse_since
from hactl.wire.envelope import Event
from hactl.wire.ids import id_time, is_id
from hactl.wire.tags import TagGlob


def chain(events: list[Event], root: str, depth: int = 0) -> dict[str, Any]:
    """The event ``root`` and, under it, every decision about it and every event fired
    because of it (``data.trigger``), recursively (pure; bounded depth)."""
    me = next((e for e in events if e.id == root), None)
    node: dict[str, Any] = {
        "id": root,
        "tag": me.tag if me else "(not stored in the window)",
        "minion": me.minion if me else "",
        "ts": me.ts if me else None,
        "data": dict(me.data) if me else {},
        "decisions": [],
        "caused": [],
    }
    if depth > 8:
        return node
    for e in events:
        if e.tag.startswith("hactl/reactor/") and e.data.get("event_id") == root:
            node["decisions"].append(row(e))
        elif e.data.get("trigger") == root and not e.tag.startswith("hactl/reactor/"):
            node["caused"].append(chain(events, e.id, depth + 1))
    return node


def _render(tree: Tree, node: dict[str, Any]) -> None:
    for d in node["decisions"]:
        color = {"done": "green", "failed": "red", "suppressed": "yellow"}.get(d["outcome"], "")
        label = f"{d['rule']} [{color}]{d['outcome']}[/]" if color else f"{d['rule']} fired"
        if d["about"] and ":" in d["about"]:  # the reconciler's unit: HAProxy:backend/server
            label += f" {d['about']}"
        times = [f"after {d['after_s']:.2f} s"] if d["after_s"] is not None else []
        times += [f"took {d['took_ms']:.0f} ms"] if d["took_ms"] is not None else []
        label += f" ({', '.join(times)})" if times else ""
        tree.add(f"{label}: {d['detail']}" if d["detail"] else label)
    for c in node["caused"]:
        _render(tree.add(f"[bold]{c['tag']}[/] ({c['id']})"), c)


#: how far from the time in an event's id its stored time may be (the creator's clock against
#: the server's; skewed minions are reported beyond 5 s)
CAUSE_MARGIN = timedelta(seconds=60)


def window_of(event_id: str, since: datetime, effects: timedelta) -> tuple[datetime, datetime]:
    """The stretch of the stream to read: around the time in the event's id when it has one
    (wherever that is: the cause is found by its id, not by ``--since``), to ``effects``
    after it; else ``since`` to now (pure)."""
    now = datetime.now(UTC)
    if not is_id(event_id):
        return since, now
    made = datetime.fromtimestamp(id_time(event_id), UTC)
    return made - CAUSE_MARGIN, min(now, made + CAUSE_MARGIN + effects)


#: what an event's effects can be: the decisions about it and the events rules fired
EFFECTS = (TagGlob.parse("hactl/event/**"), TagGlob.parse("hactl/reactor/**"))
#: the cause is first looked for this close to the time in its id (a wider look follows)
NEAR = timedelta(seconds=5)


async def read_chain(bus: Bus, event_id: str, start: datetime, until: datetime) -> list[Event]:
    """The events ``chain`` needs, read so a busy stream costs little: the cause found by
    its id near the time in it (stopping at the match), then only the decisions and fired
    events after it -- never the beacons and heartbeats that make most of a stream. An id
    without a time: every event of the window."""
    if not is_id(event_id):
        return await stored(bus, TagGlob.parse("hactl/**"), start, EVENTS_STREAM, until=until)
    made = datetime.fromtimestamp(id_time(event_id), UTC)
    cause = await find(bus, event_id, made - NEAR, min(until, made + CAUSE_MARGIN), EVENTS_STREAM)
    if cause is None:  # a skewed creator's clock: the whole margin
        cause = await find(bus, event_id, start, min(until, made + CAUSE_MARGIN), EVENTS_STREAM)
    found: dict[str, Event] = {cause.id: cause} if cause is not None else {}
    # an effect names an id of the chain (its ``event_id`` or ``trigger``), and msgpack keeps
    # strings as their bytes: what names none is skipped undecoded. Fired events first (each
    # joins the chain), then the decisions about any of them.
    ids = {event_id.encode()}

    def names_one(raw: bytes) -> bool:
        return any(i in raw for i in ids)

    for glob in EFFECTS:
        async for e in scan(bus, glob, start, until, EVENTS_STREAM, names_one):
            if e.id in found:
                continue
            found[e.id] = e
            if not e.tag.startswith("hactl/reactor/") and e.data.get("trigger") is not None:
                ids.add(e.id.encode())
    return sorted(found.values(), key=lambda e: e.ts)


def why(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(help="An event id (hactl events tail shows them)")],
    since: Annotated[
        str, typer.Option(help="For an id without a time: how far back to look (1h)")
    ] = "1h",
    effects: Annotated[
        str, typer.Option(help="How long after the event its effects are followed (10m)")
    ] = "10m",
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON")] = False,
) -> None:
    """Why did hactl do what it did: the event, the rules that looked at it (fired, suppressed
    and why, done, failed), and what those rules fired in turn. The event is found by the
    time in its id, however old; the window bounds only how long its effects are followed."""
    settings = settings_of(ctx)
    now = datetime.now(UTC)
    start, until = window_of(event_id, parse_since(since, now), now - parse_since(effects, now))

    async def body() -> list[Event]:
        url, auth = resolve_connection(settings)
        bus = await Bus.connect(url, auth, name="hactl-why", timeout=settings.connect_timeout)
        try:
            return await read_chain(bus, event_id, start, until)
        finally:
            await bus.close()

    tree_data = chain(run(body()), event_id)
    if tree_data["ts"] is None and not tree_data["decisions"]:
        where = "around the time in its id" if is_id(event_id) else f"since {since}"
        fail(UsageError(f"no event {event_id} stored {where}"))
    if as_json:
        print_json(tree_data)
        return
    tree = Tree(f"[bold]{tree_data['tag']}[/] from {tree_data['minion']} ({event_id})")
    _render(tree, tree_data)
    Console().print(tree)
