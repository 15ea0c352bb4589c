"""Which deliveries the master handles: what the view or a rule can use, never its own trail."""

from __future__ import annotations

from hactl import yamlsrc
from hactl.master.reactor.rules.actions import REGISTRY
from hactl.master.reactor.rules.interest import Interest
from hactl.master.reactor.rules.rule import Rule, parse_rules


def _rules(*globs: str) -> list[Rule]:
    text = "".join(
        f"- {{name: r{i}, on: '{g}', do: [{{event.fire: {{tag: hactl/event/o/x}}}}]}}\n"
        for i, g in enumerate(globs)
    )
    return parse_rules(yamlsrc.load(text, "t.yaml"), REGISTRY)


def test_the_view_always_wants_beacons_and_minions() -> None:
    """With no rule at all, beacon and minion events still feed the cluster view."""
    interest = Interest([])
    assert interest.wants("hactl.beacon.ctl1.vrrp")
    assert interest.wants("hactl.minion.ctl2.heartbeat")
    assert not interest.wants("hactl.event.t1.e")
    assert not interest.wants("hactl.job.01M7YNBEFCAA2JBK697FXSPDYH.ret.ctl2")


def test_event_rules_take_their_family_not_their_follow_ups() -> None:
    """A rule on hactl/event/t1/* wants t1 events; its own follow-ups (hactl/event/o/x) not."""
    interest = Interest(_rules("hactl/event/t1/*", "hactl/job/*/ret/ctl1"))
    assert interest.wants("hactl.event.t1.e")
    assert not interest.wants("hactl.event.t2.e")
    assert not interest.wants("hactl.event.o.x")
    assert interest.wants("hactl.job.01M7YNBEFCAA2JBK697FXSPDYH.ret.ctl1")
    assert not interest.wants("hactl.job.01M7YNBEFCAA2JBK697FXSPDYH.ret.ctl2")


def test_the_reactor_trail_is_never_handled() -> None:
    """Even a rule on hactl/** cannot make the master react to its own decisions."""
    interest = Interest(_rules("hactl/**"))
    assert interest.wants("hactl.event.any.thing")
    assert not interest.wants("hactl.reactor.r0.done")
    assert not interest.wants("other.subject.x")
    assert not interest.wants("hactl.x")


def test_delivery_count_from_both_ack_subject_layouts() -> None:
    """The redelivery count is read like nats-py reads it, from v1 and v2 ack subjects."""
    from nats.aio.msg import Msg

    from hactl.bus.consumer import delivered

    v1 = "$JS.ACK.HACTL_EVENTS.hactl-reactor.3.120.118.1795251616230000000.7"
    v2 = "$JS.ACK.hub.ACCHASH.HACTL_EVENTS.hactl-reactor.2.120.118.1795251616230000000.7.tok"
    for reply, want in ((v1, 3), (v2, 2)):
        msg = Msg(_client=None, subject="x", reply=reply)  # type: ignore[arg-type]
        assert delivered(reply) == want == msg.metadata.num_delivered
    assert delivered("") == 0
    assert delivered("_INBOX.abc.def") == 0
    assert delivered("$JS.ACK.a.b.x.1.2.3.4") == 0


async def test_start_up_waits_out_a_busy_jetstream_then_says_so() -> None:
    """A consumer request that times out while a raft group elects is retried; bounded."""
    import nats.errors
    import pytest

    from hactl.bus.jetstream import patient
    from hactl.errors import HactlError

    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise nats.errors.TimeoutError
        return "bound"

    assert await patient(flaky, "reactor: binding", wait=10) == "bound"
    assert len(calls) == 3

    async def never() -> str:
        raise nats.errors.TimeoutError

    with pytest.raises(
        HactlError, match=r"reactor: binding: JetStream did not answer within 0\.1s"
    ):
        await patient(never, "reactor: binding", wait=0.1)


def test_silence_is_no_evidence_while_the_master_cannot_hear() -> None:
    """FeedHealth: no verdict while deliveries stall, right after they resume (backlog), or
    when every minion is silent at once; a verdict once the feed is live and others talk."""
    from hactl.master.reactor.view.liveness import FEED_GRACE_S, FeedHealth

    feed = FeedHealth()
    assert "no delivery" in feed.blind(100.0, 10.0, ["ctl1"], 3)  # never heard anything yet
    feed.delivered(100.0)
    assert "backlog" in feed.blind(101.0, 10.0, ["ctl1"], 3)
    for t in range(101, 110):
        feed.delivered(float(t))
    assert feed.blind(110.0, 10.0, ["ctl1"], 3) == ""
    assert "at once" in feed.blind(110.0, 10.0, ["ctl1", "ctl2", "ctl3"], 3)
    assert "no delivery" in feed.blind(116.0, 10.0, ["ctl1"], 3)  # 7 s quiet > lost_after / 2
    feed.delivered(117.0)  # the stall ends: the backlog gets its grace
    assert "backlog" in feed.blind(117.0 + FEED_GRACE_S / 2, 10.0, ["ctl1"], 3)
