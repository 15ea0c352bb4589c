"""What happened in the lab around a failed lab test, for the failure's own report.

CI shows a failed test's assertion, not the lab behind it: a broker that refused connections
right after a clean baseline (CI of stop 39) left nothing to read once the lab was torn down.
:func:`story` gathers, while the lab still runs, the decisions hactl made (the trail), the
alerts, and the brokers' own start/stop/pause lines since shortly before the test started.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from hactl.lab import lab as L
from hactl.wire.envelope import Event
from tests.lab.helpers import stored_events

#: lines of a broker's console.log that tell its story (start, stop, pause, partition)
_BROKER_MARKS = (
    "asked to start",
    "asked to stop",
    "SIGTERM",
    "startup complete",
    "minority",
    "partition",
    "sync_loop",
)


def _decision(e: Event, t0: float) -> str:
    d: dict[str, Any] = e.data
    if d.get("rule") == "reconcile":
        what = f"{d.get('key')} {d.get('from')}->{d.get('to')} ({d.get('fact')})"
    elif d.get("rule") == "singleton":  # a lease: its kind, from whom to whom, and why
        what = (
            f"{d.get('key')} {d.get('kind')} {d.get('from')}->{d.get('holder')} ({d.get('fact')})"
        )
    else:
        acts = [
            f"{r.get('action')}{'' if r.get('ok', True) else ' FAILED'}"
            for r in d.get("results") or []
            if isinstance(r, dict)
        ]
        what = " ".join(
            str(x)
            for x in (d.get("key"), d.get("reason") or d.get("error") or "", ", ".join(acts))
            if x
        )
    return f"{e.ts - t0:+7.1f} s {e.tag} {what} [cause {d.get('event_tag', '')}]"[:320]


def _broker_lines(lab: L.Lab, node: str, since: float) -> list[str]:
    log = lab.node_dir(node) / "rabbit/console.log"
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    start = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return [
        f"{node}: {ln[:180]}"
        for ln in text.splitlines()
        if ln[:19] >= start and any(m in ln for m in _BROKER_MARKS)
    ]


def story(lab: L.Lab, since: float, limit: int = 60) -> str:
    """The trail's decisions and alerts since ``since`` (epoch seconds; times relative to it),
    then every broker's start/stop/pause lines since then: at most ``limit`` lines each."""
    when = datetime.fromtimestamp(since, UTC)
    events = asyncio.run(stored_events(lab, "hactl/reactor/**", when))
    events += asyncio.run(stored_events(lab, "hactl/event/**", when))
    quiet = ("/fired", "/suppressed")  # the fired half of each done, and held-back noise
    lines = [
        _decision(e, since) for e in sorted(events, key=lambda e: e.ts) if not e.tag.endswith(quiet)
    ]
    brokers = [b for n in lab.net.nodes for b in _broker_lines(lab, n, since)]
    return "\n".join(
        [
            f"decisions and alerts since {when:%H:%M:%S} UTC ({len(lines)}):",
            *lines[-limit:],
            f"broker logs ({len(brokers)} lines):",
            *brokers[-limit:],
        ]
    )
