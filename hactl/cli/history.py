"""``hactl history``: the decision trail, one row per decision (rules and the reconciler)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hactl.bus import EVENTS_STREAM, Bus
from hactl.bus.history import stored
from hactl.cli.runner import print_json, run, settings_of
from hactl.config import resolve_connection
from hactl.timeparse import parse_since
from hactl.wire.envelope import Event
from hactl.wire.tags import TagGlob, parse_tag, try_parse_tag

OUTCOMES = ("fired", "suppressed", "done", "failed")


def ago(seconds: float) -> str:
    """``3 s ago``, ``4 min ago``, ``2 h ago``."""
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def took_ms(d: Any) -> float | None:
    """How long the decision's work took: its actions' (a rule) or its HAProxy calls' (the
    reconciler), in ms; None when nothing ran (fired, suppressed, pending)."""
    if isinstance(d.get("ms"), int | float):
        return round(float(d["ms"]), 2)
    ms = [r["ms"] for r in d.get("results") or [] if isinstance(r, dict) and _num(r.get("ms"))]
    return round(sum(ms), 2) if ms else None


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _after(ts: float, trigger_ts: Any) -> float | None:
    """Seconds from the triggering event to the decision (None: no trigger time)."""
    return round(ts - trigger_ts, 3) if _num(trigger_ts) and ts >= trigger_ts else None


def row(event: Event) -> dict[str, Any]:
    """One decision: when, rule, outcome, about what (node or key), why / what was done."""
    d = event.data
    outcome = parse_tag(event.tag).what
    trigger = str(d.get("event_tag") or "")
    cause = try_parse_tag(trigger)
    about = str(d.get("key") or (cause.name if cause else trigger))
    if outcome == "suppressed":
        detail = f"{d.get('reason')}: {d.get('detail', '')}".rstrip(": ")
    elif "fact" in d:
        detail = f"{d.get('from')} -> {d.get('to')}: {d.get('fact')}"
    elif outcome == "failed":
        detail = str(d.get("error") or "")
    else:
        results = d.get("results") or []
        detail = ", ".join(str(r.get("action")) for r in results if isinstance(r, dict))
    return {
        "ts": event.ts,
        "took_ms": took_ms(d),
        "after_s": _after(event.ts, d.get("event_ts")),
        "rule": str(d.get("rule") or (cause.levels[-1] if cause else trigger)),
        "outcome": outcome,
        "about": about,
        "trigger": trigger,
        "detail": detail[:300],
        "id": event.id,
        "event_id": str(d.get("event_id") or ""),
    }


def history(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="From this long ago (1h) or an ISO time")] = "1h",
    rule: Annotated[
        str | None, typer.Option(help="Only this rule (reconcile: the reconciler)")
    ] = None,
    node: Annotated[str | None, typer.Option(help="Only decisions about this node")] = None,
    outcome: Annotated[str | None, typer.Option(help="fired, suppressed, done or failed")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many (the latest)")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per row")] = False,
) -> None:
    """Every decision the reactor and the reconciler took, with its reason, newest last:
    ``after`` is the time from the event that caused it, ``took`` how long its work ran."""
    settings = settings_of(ctx)
    if outcome is not None and outcome not in OUTCOMES:
        raise typer.BadParameter(", ".join(OUTCOMES), param_hint="--outcome")
    start = parse_since(since, datetime.now(UTC))

    async def body() -> list[dict[str, Any]]:
        url, auth = resolve_connection(settings)
        bus = await Bus.connect(url, auth, name="hactl-history", timeout=settings.connect_timeout)
        try:
            glob = TagGlob.parse(f"hactl/reactor/{rule or '*'}/{outcome or '*'}")
            events = await stored(bus, glob, start, EVENTS_STREAM)
        finally:
            await bus.close()
        rows = [row(e) for e in events]
        if node is not None:
            rows = [
                r
                for r in rows
                if r["about"].split(":")[0] in (node,)
                or f"/{node}" in r["about"]
                or f"/{node}/" in r["trigger"]
            ]
        return rows[-limit:]

    rows = run(body())
    if as_json:
        for r in rows:
            print_json(r)
        return
    now = time.time()
    table = Table(title=f"decisions since {since} ({len(rows)})")
    for col in ("when", "rule", "outcome", "about", "after", "took", "why / what"):
        table.add_column(col)
    colors = {"done": "green", "failed": "red", "suppressed": "yellow", "fired": "default"}
    for r in rows:
        table.add_row(
            ago(now - r["ts"]),
            r["rule"],
            f"[{colors[r['outcome']]}]{r['outcome']}[/]",
            r["about"],
            "" if r["after_s"] is None else f"{r['after_s']:.2f} s",
            "" if r["took_ms"] is None else f"{r['took_ms']:.0f} ms",
            r["detail"],
        )
    Console().print(table)
