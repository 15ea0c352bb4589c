"""The reactor consumer's filter subjects: narrow, never overlapping (JetStream refuses that)."""

from __future__ import annotations

from hactl import yamlsrc
from master.reactor.actions import REGISTRY
from master.reactor.filters import consumer_filters, covers, overlap
from master.reactor.rules import parse_rules


def _rules(*globs: str) -> list:  # type: ignore[type-arg]
    text = "".join(f"- {{name: r{i}, on: '{g}', do: [{{event.fire: {{tag: hactl/event/o/x}}}}]}}\n"
                   for i, g in enumerate(globs))  # fmt: skip
    return parse_rules(yamlsrc.load(text, "t.yaml"), REGISTRY)


def test_covers_and_overlap() -> None:
    """Token-wise subject algebra with * and >."""
    assert covers("hactl.beacon.>", "hactl.beacon.*.galera")
    assert not covers("hactl.beacon.*.galera", "hactl.beacon.>")
    assert covers("hactl.event.*.x", "hactl.event.a.x")
    assert overlap("hactl.event.t1.*", "hactl.event.*.e")
    assert not overlap("hactl.event.t1.*", "hactl.event.t2.*")
    assert not overlap("hactl.event.a", "hactl.event.a.b")


def test_shipped_like_rules_need_only_beacon_and_minion() -> None:
    """Beacon and minion rules add nothing beyond what the view always needs."""
    assert consumer_filters(_rules("hactl/beacon/*/galera", "hactl/minion/*/lost")) == [
        "hactl.beacon.>", "hactl.minion.>"]  # fmt: skip


def test_event_rules_are_narrow_and_disjoint() -> None:
    """Distinct event families stay separate; follow-ups (hactl.event.o.x) are not asked for."""
    f = consumer_filters(_rules("hactl/event/t1/*", "hactl/event/t2/*", "hactl/event/t1/a"))
    assert f == ["hactl.beacon.>", "hactl.event.t1.*", "hactl.event.t2.*", "hactl.minion.>"]


def test_partial_overlap_collapses_the_kind() -> None:
    """Two patterns that overlap without one covering the other: the whole kind."""
    f = consumer_filters(_rules("hactl/event/t1/*", "hactl/event/*/e"))
    assert "hactl.event.>" in f and "hactl.event.t1.*" not in f


def test_reactor_kind_is_never_consumed() -> None:
    """A rule on the reactor's own trail cannot make the consumer take it."""
    assert consumer_filters(_rules("hactl/**")) == [
        "hactl.beacon.>", "hactl.event.>", "hactl.job.>", "hactl.minion.>"]  # fmt: skip


def test_delivery_count_from_both_ack_subject_layouts() -> None:
    """The redelivery count is read like nats-py reads it, from v1 and v2 ack subjects."""
    from nats.aio.msg import Msg

    from master.reactor.runtime import delivered

    v1 = "$JS.ACK.HACTL_EVENTS.hactl-reactor.3.120.118.1795251616230000000.7"
    v2 = "$JS.ACK.hub.ACCHASH.HACTL_EVENTS.hactl-reactor.2.120.118.1795251616230000000.7.tok"
    for reply, want in ((v1, 3), (v2, 2)):
        msg = Msg(_client=None, subject="x", reply=reply)  # type: ignore[arg-type]
        assert delivered(reply) == want == msg.metadata.num_delivered
    assert delivered("") == 0
    assert delivered("_INBOX.abc.def") == 0
    assert delivered("$JS.ACK.a.b.x.1.2.3.4") == 0
