"""``hactl status --compact`` (and ``--watch``): the at-a-glance view that fits an 80x24
terminal over SSH during an incident -- what needs a person first, then one line per VIP,
one row per node (keepalived, Galera, RabbitMQ, minion), one line per backend that is not all
UP, the singletons. The full tables stay in ``hactl status``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from hactl.wire.approvals import Approval
from hactl.wire.envelope import Event
from hactl.wire.maint import Maintenance


def _vrrp(aspects: dict[str, Any]) -> str:
    cells = []
    for inst, item in sorted((aspects.get("vrrp") or {}).items()):
        if inst.startswith("_") or not isinstance(item, dict):
            continue
        state = str(item.get("state"))
        color = {"MASTER": "green", "BACKUP": "default"}.get(state, "red")
        mark = "*" if item.get("yielded") else ""
        cells.append(f"[{color}]{state[:6]}[/]{mark}")
    return " ".join(cells) or "-"


def _galera(aspects: dict[str, Any]) -> str:
    g = (aspects.get("galera") or {}).get("local")
    if not isinstance(g, dict):
        return "-"
    if not g.get("running"):
        return "[red]stopped[/]"
    state = str(g.get("local_state_comment") or ("Synced" if g.get("synced") else "?"))
    color = "green" if g.get("synced") else "yellow"
    return f"[{color}]{state[:9]}[/]" + (
        "" if g.get("cluster_status") in (None, "Primary") else " [red]non-P[/]"
    )


def _rabbit(aspects: dict[str, Any]) -> str:
    r = (aspects.get("rabbitmq") or {}).get("local")
    if not isinstance(r, dict):
        return "-"
    if not r.get("running"):
        return "[red]paused[/]" if r.get("process") else "[red]down[/]"
    extra = " [red]partition[/]" if r.get("partitions") else ""
    extra += " [yellow]alarm[/]" if r.get("alarms") else ""
    return "[green]running[/]" + extra


def _minion(aspects: dict[str, Any], now: float) -> str:
    m = aspects.get("minion")
    if not isinstance(m, dict):
        return "-"
    if m.get("lost"):
        return "[red]lost[/]"
    if m.get("stopped"):
        return "stopped"
    ago = max(0.0, now - float(m.get("last_seen") or 0))
    return f"[green]alive[/] {ago:.0f}s" + (" [yellow]skew[/]" if m.get("skewed") else "")


def _not_up(nodes: dict[str, Any]) -> list[str]:
    """'backend server STATUS xN' for every server not UP on some HAProxy."""
    seen: dict[tuple[str, str], dict[str, int]] = {}
    for aspects in nodes.values():
        for item in (aspects.get("haproxy") or {}).values():
            if isinstance(item, dict) and item.get("server") not in ("BACKEND", None):
                k = (str(item.get("backend")), str(item.get("server")))
                st = str(item.get("status"))
                seen.setdefault(k, {})[st] = seen.setdefault(k, {}).get(st, 0) + 1
    out = []
    for (backend, server), states in sorted(seen.items()):
        bad = {s: n for s, n in states.items() if s != "UP"}
        if bad:
            said = ", ".join(f"{s} x{n}" for s, n in sorted(bad.items()))
            out.append(f"{backend}/{server} [yellow]{said}[/]")
    return out


def _servers(aspects: dict[str, Any]) -> bool:
    """Whether this node's HAProxy reported any server."""
    items = (aspects.get("haproxy") or {}).values()
    return any(isinstance(i, dict) and i.get("server") not in ("BACKEND", None) for i in items)


def evidence(nodes: dict[str, Any]) -> dict[str, list[str]]:
    """Whose HAProxy the server states come from: ``reported`` (fresh), ``silent`` (no report
    at all), ``stale`` (reported, but its minion is lost). Every form of ``hactl status``
    says so instead of an all-clear it has no evidence for."""
    reported = sorted(n for n, a in nodes.items() if _servers(a))
    stale = [n for n in reported if (nodes[n].get("minion") or {}).get("lost")]
    return {
        "reported": [n for n in reported if n not in stale],
        "silent": sorted(set(nodes) - set(reported)),
        "stale": stale,
    }


def missing(nodes: dict[str, Any]) -> str:
    """What the server states lack ('' when every node's HAProxy reported and is heard)."""
    ev = evidence(nodes)
    if not ev["reported"] and not ev["stale"]:
        return "unknown: no HAProxy has reported"
    said = [f"no report from {', '.join(ev['silent'])}"] if ev["silent"] else []
    said += [f"stale: {', '.join(ev['stale'])} (minion lost)"] if ev["stale"] else []
    return "; ".join(said)


def backends_summary(nodes: dict[str, Any]) -> str | None:
    """The all-clear line, only with evidence: every node's HAProxy reported and its minion
    is heard (None when something is not UP: the caller lists it)."""
    if _not_up(nodes):
        return None
    lack = missing(nodes)
    if not lack:
        return "backends: [green]every server UP on every HAProxy[/]"
    fresh = evidence(nodes)["reported"]
    if not fresh and lack.startswith("unknown"):
        return f"backends: [yellow]{lack}[/]"
    return f"backends: UP on {', '.join(fresh) or 'none'}; [yellow]{lack}[/]"


def render(
    console: Console,
    facts: dict[str, Any],
    windows: Sequence[Maintenance] = (),
    alerts: Sequence[Event] = (),
    asks: Sequence[Approval] = (),
    singles: Sequence[dict[str, Any]] = (),
) -> None:
    """The compact view (width 80)."""
    now = time.time()
    for q in asks:
        console.print(
            f"[bold red]APPROVE?[/] {q.id} {q.rule} ({q.expires_at - now:.0f}s, then "
            f"{q.default}): {q.question}  [dim]hactl approve|deny ID[/]"
        )  # wrapped, never cut: this is what the person must read
    for w in windows:
        left = "" if w.until is None else f" {(w.until - now) / 60:.0f}min"
        console.print(
            f"[yellow]maint[/] {w.node}/{w.component}{left}: {w.reason}",
            no_wrap=True,
            overflow="ellipsis",
        )
    for a in list(alerts)[-3:]:
        what = a.tag.removeprefix("hactl/event/alert/")
        console.print(f"[red]alert[/] {what} {now - a.ts:.0f}s ago", no_wrap=True)
    vips = "; ".join(
        f"{vip} {'[red]SPLIT[/] ' if len(h) > 1 else ''}{','.join(h) or '[red]nobody[/]'}"
        for vip, h in sorted(facts["vips"].items())
    )
    console.print(f"VIPs: {vips or '[red]none held[/]'}", no_wrap=True, overflow="ellipsis")
    nodes: dict[str, Any] = facts["nodes"]
    t = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for col in ("node", "keepalived", "galera", "rabbitmq", "minion"):
        t.add_column(col, no_wrap=True, overflow="ellipsis")
    for node, aspects in sorted(nodes.items()):
        t.add_row(node, _vrrp(aspects), _galera(aspects), _rabbit(aspects), _minion(aspects, now))
    console.print(t)
    bad = _not_up(nodes)
    shown = bad[:6] + ([f"... {len(bad) - 6} more (hactl status --full)"] if len(bad) > 6 else [])
    for line in shown:
        console.print(f"not UP: {line}", no_wrap=True, overflow="ellipsis")
    if (summary := backends_summary(nodes)) is not None:
        console.print(summary, no_wrap=True, overflow="ellipsis")
    for s in singles:
        holder = s.get("holder") or "[red]nobody[/]"
        console.print(f"singleton {s['name']}: {holder}", no_wrap=True, overflow="ellipsis")
