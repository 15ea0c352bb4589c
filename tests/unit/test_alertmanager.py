"""Events as Alertmanager alerts (master/alertmanager.py): labels that identify what is wrong,
startsAt, endsAt when it is over; a failed decision resolved by the next done of its key."""

from __future__ import annotations

from typing import Any

import pytest

from hactl.master.alertmanager import OpenAlerts, alert_of
from hactl.wire.envelope import new_event

pytestmark = pytest.mark.unit


def test_alert_events_and_decisions_map_to_alerts() -> None:
    """alert/<name> -> alertname; failed/done of one rule and key share labels (done ends
    it); a pending approval ends at its deadline; other events say nothing."""
    a = alert_of(
        new_event(
            "hactl/event/alert/service-given-up",
            "master",
            {"node": "ctl3", "service": "haproxy", "trigger": {"x": 1}},
        )
    )
    assert a is not None and a["labels"] == {
        "source": "hactl",
        "alertname": "service-given-up",
        "node": "ctl3",
        "service": "haproxy",
    }
    assert "endsAt" not in a and a["startsAt"].endswith("Z")
    failed = alert_of(
        new_event(
            "hactl/reactor/galera-cluster-down/failed",
            "master",
            {"key": "galera", "error": "refused"},
        )
    )
    done = alert_of(
        new_event("hactl/reactor/galera-cluster-down/done", "master", {"key": "galera"})
    )
    assert failed is not None and done is not None and failed["labels"] == done["labels"]
    assert "startsAt" in failed and "endsAt" in done
    pend = alert_of(
        new_event(
            "hactl/reactor/galera-cluster-down/pending",
            "master",
            {"approval": {"id": "X", "question": "q?", "expires_at": 2e9}},
        )
    )
    assert (
        pend is not None
        and pend["labels"]["alertname"] == "hactl_approval_pending"
        and pend["endsAt"].startswith("2033")
    )
    assert alert_of(new_event("hactl/beacon/ctl1/galera", "ctl1", {"items": {}})) is None


def test_label_values_from_the_event_are_bounded() -> None:
    """Only short printable strings become labels (a control character or a huge value
    from an event never reaches Alertmanager's label set)."""
    a = alert_of(
        new_event("hactl/event/alert/x", "cli", {"node": "a\nb", "vip": "v" * 500, "service": "ok"})
    )
    assert a is not None and a["labels"] == {"source": "hactl", "alertname": "x", "service": "ok"}


def _firing(name: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, **labels}, "startsAt": "2026-12-05T10:00:00Z"}


def test_an_open_alert_is_resent_ahead_until_it_ends() -> None:
    """A firing alert is posted with endsAt hold ahead, re-sent with it moved on, and ended by
    a resolution naming fewer labels (every open one of that name that has them)."""
    open_ = OpenAlerts(hold_s=240)
    (sent,) = open_.take(_firing("split-brain", vips="a"), now=1000.0)
    assert sent["endsAt"] == "1970-01-01T00:20:40Z"  # 1000 + 240
    open_.take(_firing("split-brain", vips="b"), now=1001.0)
    open_.take(_firing("service-given-up", node="ctl1", service="haproxy"), now=1002.0)
    assert [a["endsAt"] for a in open_.due(2000.0)] == ["1970-01-01T00:37:20Z"] * 3
    end = {"labels": {"alertname": "split-brain"}, "startsAt": "x", "endsAt": "x"}
    ended = open_.take(end, now=2001.0)
    assert sorted(a["labels"]["vips"] for a in ended) == ["a", "b"]
    assert all(a["endsAt"] == "x" for a in ended)
    assert [a["labels"]["alertname"] for a in open_.due(2002.0)] == ["service-given-up"]


def test_a_resolution_of_nothing_open_is_not_sent() -> None:
    """Ending an alert this sink never reported firing posts nothing; another node's stays."""
    open_ = OpenAlerts()
    open_.take(_firing("service-given-up", node="ctl1", service="haproxy"), now=0.0)
    other = {"labels": {"alertname": "service-given-up", "node": "ctl2"}, "endsAt": "t"}
    assert open_.take(other, now=1.0) == []
    assert len(open_.firing) == 1


def test_an_alert_with_its_own_end_is_passed_on_untracked() -> None:
    """A pending approval carries its deadline as endsAt: posted as it is, never re-sent."""
    open_ = OpenAlerts()
    pending = {**_firing("hactl_approval_pending"), "endsAt": "2026-12-05T11:00:00Z"}
    assert open_.take(pending, now=0.0) == [pending]
    assert open_.due(1.0) == []
