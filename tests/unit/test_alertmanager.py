"""Events as Alertmanager alerts (master/alertmanager.py): labels that identify what is wrong,
startsAt, endsAt when it is over; a failed decision resolved by the next done of its key."""

from __future__ import annotations

import pytest

from hactl.master.alertmanager import alert_of
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
