"""Alertmanager's API as a notification sink (pure): hactl events -> ``POST /api/v2/alerts``.

Alertmanager identifies an alert by its label set; posting the same labels again with an
``endsAt`` in the past resolves it. So each event maps to one alert whose labels say *what*
is wrong, and a later event that says it is over posts the same labels with ``endsAt``:

- ``hactl/event/alert/<name>``: alert ``<name>`` (labels: node, service, vip, instance ... from
  the event's data when they are short strings); resolved when the event's data says
  ``resolved: true``;
- ``hactl/reactor/<rule>/failed``: ``hactl_decision_failed`` {rule, key}; the rule's next
  ``done`` for the same key resolves it;
- ``hactl/reactor/<rule>/pending``: ``hactl_approval_pending`` {rule, approval}; it ends by
  itself at the approval's deadline (``endsAt``: Alertmanager stops it even if hactl does not).

Every alert carries ``source: hactl`` and the event id as an annotation.

The lifecycle (:class:`OpenAlerts`, kept per sink): a firing alert is posted with ``endsAt``
``hold`` seconds ahead and posted again every ``resend`` seconds while it is open, so it stays
firing however long the fault lasts (Alertmanager's ``resolve_timeout`` never ends it, and an
alert hactl stops re-sending -- the master died -- ends by itself within ``hold``: Prometheus
does the same with 4 x its resend delay). A resolution ends every open alert of that name whose
labels include the resolution's (``hactl/event/alert/split-brain`` with ``resolved: true``
ends every open split-brain alert; one with ``node: ctl2`` only ctl2's) and is posted with
their own labels, so Alertmanager matches them; a resolution of nothing this sink reported is
not sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hactl.wire.envelope import Event
from hactl.wire.tags import parse_tag

_LABEL_KEYS = ("node", "service", "vip", "vips", "instance", "backend", "server", "component")
_SHORT = re.compile(r"[^\x00-\x1f\x7f]{1,128}\Z")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _labels_from(data: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k in _LABEL_KEYS:
        v = data.get(k)
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            v = ",".join(sorted(v))
        if isinstance(v, str) and _SHORT.fullmatch(v):
            out[k] = v
    return out


def alert_of(event: Event) -> dict[str, Any] | None:
    """The Alertmanager alert an event starts or ends (None: nothing to say)."""
    tag = parse_tag(event.tag)
    data = dict(event.data)
    base = {"source": "hactl"}
    notes = {"event_id": event.id, "tag": event.tag}
    if tag.kind == "event" and tag.name == "alert" and tag.what:
        labels = {**base, "alertname": tag.what, **_labels_from(data)}
        summary = ", ".join(f"{k}={v}" for k, v in sorted(data.items()) if k != "trigger")
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": {**notes, "summary": summary[:1000]},
            "startsAt": _iso(event.ts),
        }
        if data.get("resolved") is True:
            alert["endsAt"] = _iso(event.ts)
        return alert
    if tag.kind == "reactor":
        rule, outcome = tag.name, tag.what
        key = str(data.get("key") or "")[:128]
        if outcome in ("failed", "done"):
            labels = {**base, "alertname": "hactl_decision_failed", "rule": rule, "key": key}
            error = str(data.get("error") or data.get("reason") or "")[:1000]
            alert = {"labels": labels, "annotations": {**notes, "summary": error}}
            if outcome == "failed":
                alert["startsAt"] = _iso(event.ts)
            else:
                alert["endsAt"] = _iso(event.ts)  # the same rule and key went through
            return alert
        if outcome == "pending" and isinstance(data.get("approval"), dict):
            a = data["approval"]
            labels = {
                **base,
                "alertname": "hactl_approval_pending",
                "rule": rule,
                "approval": str(a.get("id")),
            }
            return {
                "labels": labels,
                "annotations": {**notes, "summary": str(a.get("question", ""))[:1000]},
                "startsAt": _iso(event.ts),
                "endsAt": _iso(float(a.get("expires_at") or event.ts)),
            }
    return None


def _ended(alert: dict[str, Any]) -> bool:
    """A resolution: an end and no start, or an end no later than its start."""
    return "endsAt" in alert and ("startsAt" not in alert or alert["endsAt"] <= alert["startsAt"])


@dataclass
class OpenAlerts:
    """The alerts one sink reported firing and has not seen end (pure: the clock is passed)."""

    hold_s: float = 240.0
    firing: dict[str, dict[str, Any]] = field(default_factory=dict)

    def take(self, alert: dict[str, Any], now: float) -> list[dict[str, Any]]:
        """What to post for ``alert``: a firing one itself (tracked, ``endsAt`` ahead); a
        resolution every open alert it ends, with their labels; one with a fixed end (an
        approval's deadline) as it is, untracked."""
        labels = alert["labels"]
        if _ended(alert):
            name, want = labels["alertname"], labels.items()
            ended = [
                ident
                for ident, a in self.firing.items()
                if a["labels"]["alertname"] == name and want <= a["labels"].items()
            ]
            out = []
            for ident in ended:
                a = self.firing.pop(ident)
                out.append({**a, "endsAt": alert["endsAt"]})
            return out
        if "endsAt" in alert:
            return [alert]
        self.firing[_ident(labels)] = alert
        return [{**alert, "endsAt": _iso(now + self.hold_s)}]

    def due(self, now: float) -> list[dict[str, Any]]:
        """Every open alert again, its ``endsAt`` moved ahead (the periodic re-send)."""
        return [{**a, "endsAt": _iso(now + self.hold_s)} for a in self.firing.values()]


def _ident(labels: dict[str, str]) -> str:
    return "\x1f".join(f"{k}={labels[k]}" for k in sorted(labels))
