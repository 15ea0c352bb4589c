"""``hactl why EVENT_ID``: the causal chain from one event through rules to what they did."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.tree import Tree

from hactl.bus import EVENTS_STREAM, Bus
from hactl.bus.history import stored
from hactl.cli.history import row
from hactl.cli.runner import fail, print_json, run, settings_of
from hactl.config import resolve_connection
from hactl.errors import UsageError
from hactl.timeparse import parse_since
from hactl.wire.envelope import Event
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


def why(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(help="An event id (hactl events tail shows them)")],
    since: Annotated[str, typer.Option(help="How far back to look (1h) or an ISO time")] = "1h",
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON")] = False,
) -> None:
    """Why did hactl do what it did: the event, the rules that looked at it (fired, suppressed
    and why, done, failed), and what those rules fired in turn."""
    settings = settings_of(ctx)
    start = parse_since(since, datetime.now(UTC))

    async def body() -> list[Event]:
        url, auth = resolve_connection(settings)
        bus = await Bus.connect(url, auth, name="hactl-why", timeout=settings.connect_timeout)
        try:
            return await stored(bus, TagGlob.parse("hactl/**"), start, EVENTS_STREAM)
        finally:
            await bus.close()

    tree_data = chain(run(body()), event_id)
    if tree_data["ts"] is None and not tree_data["decisions"]:
        fail(UsageError(f"no event {event_id} stored since {since} (try --since 1d)"))
    if as_json:
        print_json(tree_data)
        return
    tree = Tree(f"[bold]{tree_data['tag']}[/] from {tree_data['minion']} ({event_id})")
    _render(tree, tree_data)
    Console().print(tree)
