"""``hactl status``: the cluster view the masters keep, as tables (or JSON)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hactl.auth.perms import MAINT_BUCKET
from hactl.bus import EVENTS_STREAM, Bus
from hactl.bus.history import stored
from hactl.bus.viewstore import ViewStore
from hactl.cli.approve import read_all as read_approvals
from hactl.cli.runner import print_json, run, settings_of
from hactl.cli.singleton import read as read_singletons
from hactl.cli.status_compact import evidence, missing
from hactl.cli.status_compact import render as render_compact
from hactl.config import Settings, resolve_connection
from hactl.errors import BusError, HactlError
from hactl.master.reactor.view.cluster import ClusterView
from hactl.wire.approvals import Approval
from hactl.wire.envelope import Event
from hactl.wire.maint import Maintenance, parse_records
from hactl.wire.tags import TagGlob

Extras = tuple[list[Maintenance], list[Event], list[dict[str, Any]], list[Approval]]


async def _extras(bus: Bus) -> Extras:
    """Active maintenance windows, the alerts of the last 15 minutes and the singletons (best
    effort: a missing bucket or stream is simply nothing to show)."""
    windows: list[Maintenance] = []
    alerts: list[Event] = []
    singles: list[dict[str, Any]] = []
    asks: list[Approval] = []
    with contextlib.suppress(BusError):
        singles, _ = await read_singletons(bus)
    with contextlib.suppress(BusError):
        now = time.time()
        asks = [a for a in await read_approvals(bus) if a.open(now)]
    with contextlib.suppress(BusError):
        records, _ = parse_records(await bus.read_bucket(MAINT_BUCKET))
        windows = [w for w in records if w.active()]
    with contextlib.suppress(BusError):
        since = datetime.now(UTC) - timedelta(minutes=15)
        alerts = await stored(bus, TagGlob.parse("hactl/event/alert/**"), since, EVENTS_STREAM)
    return windows, alerts[-10:], singles, asks


async def _read_view(settings: Settings) -> tuple[ClusterView, Extras]:
    url, auth = resolve_connection(settings)
    bus = await Bus.connect(url, auth, name="hactl-status", timeout=settings.connect_timeout)
    view = ClusterView()
    try:
        try:
            entries = await ViewStore(bus).load(lambda key, why: None)
        except BusError as exc:
            if "no KV bucket" in exc.detail:
                raise BusError(
                    url, "no cluster view yet (is a master with --reactors running?)"
                ) from None
            raise
        for node, aspect, value, _ in entries:
            view.set(node, aspect, value)  # refused values are counted, not shown
        extras = await _extras(bus)
    finally:
        await bus.close()
    return view, extras


def _top(
    console: Console,
    windows: list[Maintenance],
    alerts: list[Event],
    asks: Sequence[Approval] = (),
) -> None:
    """What a person must see first: decisions waiting for them, planned work hactl leaves
    alone, and recent alerts."""
    now = time.time()
    for q in asks:
        console.print(
            f"[bold red]approval pending[/] {q.id} ({q.rule}, {q.expires_at - now:.0f} s left, "
            f"then {q.default}): {q.question}  [dim]hactl approve|deny {q.id}[/]"
        )
    for w in windows:
        until = "until turned off" if w.until is None else f"{(w.until - now) / 60:.0f} min left"
        console.print(f"[yellow]maintenance[/] {w.node}/{w.component}: {w.reason} ({until})")
    for a in alerts:
        what = a.tag.removeprefix("hactl/event/alert/")
        detail = ", ".join(f"{k}={v}" for k, v in sorted(a.data.items()) if k != "trigger")
        console.print(f"[red]alert[/] {what} ({now - a.ts:.0f} s ago): {detail[:150]}")


def _vrrp_table(nodes: dict[str, Any]) -> Table:
    """Each node's keepalived instances: state and priority (yielding: hactl asked it to
    give up the VIP of a split brain)."""
    t = Table(title="keepalived")
    t.add_column("node")
    t.add_column("instances")
    for node, aspects in sorted(nodes.items()):
        cells = []
        for inst, item in sorted((aspects.get("vrrp") or {}).items()):
            if inst.startswith("_") or not isinstance(item, dict):
                continue
            state = str(item.get("state"))
            color = {"MASTER": "green", "BACKUP": "default"}.get(state, "red")
            extra = " [yellow](yielding)[/]" if item.get("yielded") else ""
            cells.append(f"{inst} [{color}]{state}[/] {item.get('priority')}{extra}")
        if cells:
            t.add_row(node, "; ".join(cells))
    return t


def _servers(nodes: dict[str, Any]) -> dict[str, dict[str, Counter[str]]]:
    """backend -> server -> Counter of its status over every HAProxy."""
    out: dict[str, dict[str, Counter[str]]] = {}
    for aspects in nodes.values():
        for item in (aspects.get("haproxy") or {}).values():
            if isinstance(item, dict) and item.get("server") not in ("BACKEND", None):
                backend, server = str(item.get("backend")), str(item.get("server"))
                out.setdefault(backend, {}).setdefault(server, Counter())[
                    str(item.get("status"))
                ] += 1
    return out


def _say(states: Counter[str]) -> str:
    parts = []
    for status, n in sorted(states.items()):
        color = "green" if status == "UP" else "yellow" if status in ("DRAIN", "MAINT") else "red"
        parts.append(f"[{color}]{status}[/]" + (f" x{n}" if len(states) > 1 else ""))
    return "/".join(parts)


def _backends(nodes: dict[str, Any]) -> Table:
    """One row per Galera/RabbitMQ backend and per API backend with a server not UP; the API
    backends where every server is UP on every HAProxy fold into one row."""
    haproxies = sum(1 for a in nodes.values() if a.get("haproxy"))
    t = Table(title=f"HAProxy backends (on {haproxies} HAProxies; --full: every server)")
    t.add_column("backend")
    t.add_column("servers (status on every HAProxy)")
    healthy: list[str] = []
    for backend, servers in sorted(_servers(nodes).items()):
        if backend not in ("galera", "rabbitmq", "rabbitmq_tls") and all(
            set(c) == {"UP"} for c in servers.values()
        ):
            healthy.append(backend)
            continue
        t.add_row(backend, ", ".join(f"{s} {_say(c)}" for s, c in sorted(servers.items())))
    lack = missing(nodes)
    if healthy:
        said = "[green]every server UP[/]" if not lack else "UP on every HAProxy that reported"
        t.add_row(f"{len(healthy)} API backends", said)
    if lack:  # no all-clear without a report from every HAProxy
        t.caption = f"[yellow]{lack}[/]"
    return t


def _full_servers(nodes: dict[str, Any]) -> Table:
    hap = Table(title="HAProxy servers (per HAProxy node)")
    for col in ("node", "backend/server", "status", "weight"):
        hap.add_column(col)
    ev = evidence(nodes)
    for node, aspects in sorted(nodes.items()):
        if node in ev["silent"]:
            hap.add_row(node, "-", "[yellow]no report[/]", "-")
            continue
        stale = " [yellow](stale: minion lost)[/]" if node in ev["stale"] else ""
        for key, item in sorted((aspects.get("haproxy") or {}).items()):
            if isinstance(item, dict) and item.get("server") not in ("BACKEND", None):
                state = _say(Counter([str(item.get("status"))])) + stale
                hap.add_row(node, key, state, str(item.get("weight")))
    if lack := missing(nodes):
        hap.caption = f"[yellow]{lack}[/]"
    return hap


def _tables(console: Console, facts: dict[str, Any], full: bool = False) -> None:
    nodes: dict[str, dict[str, Any]] = facts["nodes"]
    vips = Table(title="VIPs")
    for col in ("vip", "holders"):
        vips.add_column(col)
    for vip, holders in sorted(facts["vips"].items()):
        mark = "[red]SPLIT BRAIN[/] " if len(holders) > 1 else ""
        vips.add_row(vip, mark + ", ".join(holders))
    console.print(vips)
    if facts["split_brain"]:
        console.print(f"[bold red]warning: split brain on {', '.join(facts['split_brain'])}[/]")
    console.print(_vrrp_table(nodes))
    if full:
        console.print(_full_servers(nodes))
    else:
        console.print(_backends(nodes))
    gal = Table(title="Galera")
    for col in ("node", "running", "cluster", "state", "size", "position"):
        gal.add_column(col)
    for node, aspects in sorted(nodes.items()):
        g = (aspects.get("galera") or {}).get("local")
        if isinstance(g, dict):
            if g.get("running"):
                pos = f"{g.get('cluster_state_uuid', '')}:{g.get('last_committed')}"
            else:
                pos = f"{g.get('uuid')}:{g.get('seqno')} safe={g.get('safe_to_bootstrap')}"
            cells = [
                g.get("running"),
                g.get("cluster_status", "-"),
                g.get("local_state_comment", "-"),
                g.get("cluster_size", "-"),
            ]
            gal.add_row(node, *map(str, cells), pos)
    if gal.row_count:  # no Galera in this cluster: no empty table
        console.print(gal)
    rab = Table(title="RabbitMQ")
    for col in ("node", "running", "running members", "partitions", "alarms"):
        rab.add_column(col)
    for node, aspects in sorted(nodes.items()):
        r = (aspects.get("rabbitmq") or {}).get("local")
        if isinstance(r, dict):
            members = ", ".join(r.get("running_members") or [])
            parts = ", ".join(r.get("partitions") or []) or "-"
            rab.add_row(
                node, str(r.get("running")), members, parts, ", ".join(r.get("alarms") or []) or "-"
            )
    if rab.row_count:
        console.print(rab)
    mins = Table(title="Minions")
    for col in ("node", "state", "last seen", "clock", "roles"):
        mins.add_column(col)
    for node, aspects in sorted(nodes.items()):
        m = aspects.get("minion")
        if isinstance(m, dict):
            state = (
                "[red]lost[/]"
                if m.get("lost")
                else "stopped"
                if m.get("stopped")
                else "[green]alive[/]"
            )
            ago = max(0.0, time.time() - float(m.get("last_seen") or 0))
            skew = float(m.get("skew") or 0.0)
            clock = f"[yellow]skewed {skew:+.1f} s[/]" if m.get("skewed") else f"{skew:+.1f} s"
            mins.add_row(
                node,
                state,
                f"{ago:.1f} s ago" if ago < 1e6 else "never",
                clock,
                ", ".join(m.get("roles") or []),
            )
    console.print(mins)


def _singletons(console: Console, singles: list[dict[str, Any]], nodes: dict[str, Any]) -> None:
    """Each singleton: its holder (the lease record), since when, whether the copy runs and
    each node's failures (the nodes' singleton beacons)."""
    if not singles:
        return
    table = Table(title="Singletons")
    for col in ("name", "holder", "since", "running", "failures", "last"):
        table.add_column(col)
    for r in singles:
        seen: dict[str, dict[str, Any]] = {}
        for n, a in sorted(nodes.items()):
            item = (a.get("singleton") or {}).get(r["name"])
            if isinstance(item, dict):
                seen[n] = item
        held = seen.get(r["holder"]) or {}
        fails = ", ".join(f"{n} {v['failures']}" for n, v in seen.items() if v.get("failures"))
        since = "-" if not r["since"] else f"{max(0.0, time.time() - r['since']):.0f} s ago"
        table.add_row(
            r["name"],
            r["holder"] or "[red]nobody[/]",
            since,
            "[green]yes[/]" if held.get("running") else "[red]no[/]",
            fails or "-",
            str(held.get("last", ""))[:60],
        )
    console.print(table)


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the view as JSON")] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Every server on every HAProxy, one row each")
    ] = False,
    watch: Annotated[
        float,
        typer.Option(help="Refresh every this many seconds until Ctrl-C (0: print once)", min=0),
    ] = 0.0,
    compact: Annotated[
        bool,
        typer.Option("--compact", help="One screen (80x24): a row per node; --watch uses it"),
    ] = False,
) -> None:
    """The cluster view the masters keep: VIP holders, HAProxy, Galera, RabbitMQ, minions;
    maintenance and recent alerts first. --watch 2 keeps it on screen, refreshed."""
    settings = settings_of(ctx)
    if watch > 0 and not as_json:
        _watch(settings, full, watch, compact=not full)
        return
    view, (windows, alerts, singles, asks) = run(_read_view(settings))
    facts = view.facts()
    if as_json:
        pending = [{"id": a.id, "rule": a.rule, "question": a.question} for a in asks]
        print_json(
            {
                **facts,
                "haproxy_evidence": evidence(facts["nodes"]),
                "singletons": singles,
                "approvals": pending,
            }
        )
        return
    console = Console()
    if compact:
        render_compact(console, facts, windows, alerts, asks, singles)
        return
    _top(console, windows, alerts, asks)
    _tables(console, facts, full)
    _singletons(console, singles, facts["nodes"])


def _watch(settings: Settings, full: bool, every: float, *, compact: bool = True) -> None:
    """Redraw the status in place every ``every`` seconds (an incident over SSH); a read that
    fails is shown on the screen, not fatal."""
    console = Console()

    def frame() -> Console:
        shot = Console(record=True, width=console.width, force_terminal=console.is_terminal)
        try:
            view, (windows, alerts, singles, asks) = asyncio.run(_read_view(settings))
            if compact:
                render_compact(shot, view.facts(), windows, alerts, asks, singles)
            else:
                _top(shot, windows, alerts, asks)
                _tables(shot, view.facts(), full)
                _singletons(shot, singles, view.facts()["nodes"])
        except HactlError as exc:  # shown on the screen, tried again at the next refresh
            shot.print(f"[red]cannot read the view now: {exc}[/]")
        shot.print(f"[dim]hactl status --watch {every:g}: {time.strftime('%H:%M:%S')}[/]")
        return shot

    # the alternate screen, as watch(1) uses: each frame replaces the last whole (an in-place
    # redraw by cursor moves stacked frames in tmux)
    with Live(console=console, screen=True, auto_refresh=False) as live:
        try:
            while True:
                live.update(Text.from_ansi(frame().export_text(styles=True)), refresh=True)
                time.sleep(every)
        except KeyboardInterrupt:
            pass
