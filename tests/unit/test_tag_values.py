"""Tags parsed once into typed values and built by the wire layer's builders only."""

from __future__ import annotations

import pytest

from hactl.errors import TagError
from hactl.wire.decisions import Cause, decision
from hactl.wire.envelope import new_event
from hactl.wire.tags import (
    audit_tag,
    beacon_tag,
    event_tag,
    job_tag,
    minion_tag,
    parse_tag,
    reactor_tag,
    try_parse_tag,
)

pytestmark = pytest.mark.unit


def test_each_kind_parses_into_its_parts() -> None:
    """kind, name, what, rest and node for every kind of tag."""
    assert parse_tag("hactl/beacon/ctl1/vrrp").node == "ctl1"
    assert parse_tag("hactl/beacon/ctl1/vrrp").what == "vrrp"
    assert parse_tag("hactl/minion/ctl2/lost").node == "ctl2"
    ret = parse_tag("hactl/job/J1/ret/ctl3")
    assert (ret.kind, ret.name, ret.what, ret.rest, ret.node) == ("job", "J1", "ret", ("ctl3",), "")
    deep = parse_tag("hactl/event/alert/split_brain/x")
    assert deep.levels == ("hactl", "event", "alert", "split_brain", "x")
    assert parse_tag("hactl/event/lat").what == "" and str(parse_tag("hactl/event/lat")) == (
        "hactl/event/lat"
    )


def test_a_bad_tag_is_refused_or_none() -> None:
    """parse_tag raises TagError; try_parse_tag says None (a field someone else wrote)."""
    with pytest.raises(TagError):
        parse_tag("hactl/beacon/ctl1")
    assert try_parse_tag("not/a/tag") is None and try_parse_tag(42) is None


def test_builders_make_valid_tags_and_refuse_bad_levels() -> None:
    """Each builder's tag parses back to what it was given; a level with '/' is refused."""
    assert parse_tag(beacon_tag("ctl1", "galera")).what == "galera"
    assert parse_tag(minion_tag("ctl1", "heartbeat")).what == "heartbeat"
    assert job_tag("J1") == "hactl/job/J1/new" and job_tag("J1", "ctl1") == "hactl/job/J1/ret/ctl1"
    assert reactor_tag("r", "done") == "hactl/reactor/r/done"
    assert audit_tag("UKEY", "maint-on") == "hactl/audit/UKEY/maint-on"
    assert event_tag("galera", "step") == "hactl/event/galera/step"
    with pytest.raises(TagError):
        beacon_tag("ctl1/x", "vrrp")


def test_a_decision_names_its_cause_in_one_layout() -> None:
    """The trail's one builder: rule, cause id/tag/time, then the decider's fields."""
    cause = new_event("hactl/beacon/ctl1/vrrp", "ctl1", {"items": {}}, ts=100.0)
    done = decision("r", "done", Cause.of(cause), {"results": []})
    assert done.tag == "hactl/reactor/r/done" and done.minion == "master"
    assert list(done.data) == ["rule", "event_id", "event_tag", "event_ts", "results"]
    assert done.data["event_id"] == cause.id and done.data["event_ts"] == 100.0
    timer = decision("singleton", "done", Cause("", "hactl/singleton"), {"key": "s"})
    assert "event_ts" not in timer.data and timer.data["event_tag"] == "hactl/singleton"
