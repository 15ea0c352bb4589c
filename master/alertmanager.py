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
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from hactl.wire.envelope import Event

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
    parts = event.tag.split("/")
    data = dict(event.data)
    base = {"source": "hactl"}
    notes = {"event_id": event.id, "tag": event.tag}
    if parts[:3] == ["hactl", "event", "alert"] and len(parts) >= 4:
        labels = {**base, "alertname": parts[3], **_labels_from(data)}
        summary = ", ".join(f"{k}={v}" for k, v in sorted(data.items()) if k != "trigger")
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": {**notes, "summary": summary[:1000]},
            "startsAt": _iso(event.ts),
        }
        if data.get("resolved") is True:
            alert["endsAt"] = _iso(event.ts)
        return alert
    if parts[:2] == ["hactl", "reactor"] and len(parts) == 4:
        rule, outcome = parts[2], parts[3]
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
