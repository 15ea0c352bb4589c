"""The Galera recovery planner: every case of LAB-NOTES and the Galera docs, plus properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hactl.master.reactor.rules.galera_plan import ZERO_UUID, Member, plan

U = "75faf094-0000-11f1-aa8d-d6179edf788c"
V = "0b1d2e3f-0000-11f1-aa8d-d6179edf788c"


def down(node: str, seqno: int, *, uuid: str = U, safe: bool = False) -> Member:
    """A reachable, stopped member at ``uuid:seqno``."""
    return Member(node, reachable=True, uuid=uuid, seqno=seqno, safe_to_bootstrap=safe)


def ms(*members: Member) -> dict[str, Member]:
    """Keyed by node."""
    return {m.node: m for m in members}


def test_clean_stop_bootstraps_the_safe_node() -> None:
    """After a clean shutdown the last node out is safe_to_bootstrap: it is chosen."""
    d = plan(ms(down("ctl1", 10), down("ctl2", 12), down("ctl3", 13, safe=True)))
    assert (d.kind, d.node, d.uuid, d.seqno) == ("bootstrap", "ctl3", U, 13)
    assert d.rejoin == ("ctl2", "ctl1")


def test_crash_recovered_positions_choose_highest_seqno() -> None:
    """LAB-NOTES: all killed, --wsrep-recover gave :13 :13 :10 -> ctl1 (tie -> lowest id)."""
    d = plan(ms(down("ctl1", 13), down("ctl2", 13), down("ctl3", 10)))
    assert (d.kind, d.node, d.seqno, d.rejoin) == ("bootstrap", "ctl1", 13, ("ctl2", "ctl3"))


def test_one_node_ahead() -> None:
    """The most advanced node wins whatever its id."""
    d = plan(ms(down("ctl1", 5), down("ctl2", 9), down("ctl3", 7)))
    assert (d.node, d.rejoin) == ("ctl2", ("ctl3", "ctl1"))


def test_unreachable_member_is_a_refusal() -> None:
    """Its data may be newest: refuse, unless the override is configured."""
    members = ms(down("ctl1", 5), down("ctl2", 9), Member("ctl3", reachable=False))
    d = plan(members)
    assert d.kind == "refuse" and "ctl3" in d.reason and "unreachable" in d.reason
    forced = plan(members, allow_unreachable=True)
    assert (forced.kind, forced.node, forced.rejoin) == ("bootstrap", "ctl2", ("ctl1",))


def test_differing_uuids_are_a_refusal() -> None:
    """Two histories: no automatic choice."""
    d = plan(ms(down("ctl1", 5), down("ctl2", 9, uuid=V), down("ctl3", 7)))
    assert d.kind == "refuse" and U in d.reason and V in d.reason


def test_zero_uuid_member_does_not_count_as_a_history() -> None:
    """A node wiped to an empty state joins by SST; the others decide."""
    d = plan(ms(down("ctl1", 5), down("ctl2", -1, uuid=ZERO_UUID), down("ctl3", 7)))
    assert (d.kind, d.node, d.rejoin) == ("bootstrap", "ctl3", ("ctl1", "ctl2"))


def test_primary_still_alive_is_a_refusal() -> None:
    """A reachable Primary component exists: rejoin, never bootstrap a second one."""
    alive = Member(
        "ctl1", reachable=True, running=True, primary=True, synced=True, uuid=U, seqno=20
    )
    d = plan(ms(alive, down("ctl2", 30), down("ctl3", 7)))
    assert d.kind == "refuse" and "Primary component exists (ctl1)" in d.reason


def test_all_synced_is_nothing_to_do() -> None:
    """Nothing is broken: the decision says so."""
    up = [Member(n, True, True, True, True, U, 9) for n in ("ctl1", "ctl2", "ctl3")]
    assert plan(ms(*up)).kind == "nothing"


def test_unrecovered_position_is_a_refusal() -> None:
    """seqno -1 (crash) with no recovered position and no safe flag: refuse."""
    d = plan(ms(down("ctl1", -1), down("ctl2", 9), down("ctl3", 7)))
    assert d.kind == "refuse" and "ctl1" in d.reason


def test_contradictory_safe_flag_is_a_refusal() -> None:
    """A stale safe_to_bootstrap on a node behind another member is not trusted."""
    d = plan(ms(down("ctl1", 5, safe=True), down("ctl2", 9), down("ctl3", 7)))
    assert d.kind == "refuse" and "contradictory" in d.reason


def test_non_primary_running_nodes_can_be_recovered() -> None:
    """Nodes running but non-Primary (a lost quorum) are positions too, not a Primary."""
    stuck = [Member(n, True, True, False, False, U, s) for n, s in (("ctl1", 4), ("ctl2", 6))]
    d = plan(ms(*stuck, down("ctl3", 5)))
    assert (d.kind, d.node) == ("bootstrap", "ctl2")


def test_no_members() -> None:
    """Nothing known: refuse."""
    assert plan({}).kind == "refuse"


member = st.builds(
    Member,
    node=st.sampled_from(["ctl1", "ctl2", "ctl3", "ctl4", "ctl5"]),
    reachable=st.booleans(),
    running=st.booleans(),
    primary=st.booleans(),
    synced=st.booleans(),
    uuid=st.sampled_from([U, V, ZERO_UUID, None]),
    seqno=st.one_of(st.none(), st.integers(-1, 50)),
    safe_to_bootstrap=st.booleans(),
)


@given(st.lists(member, max_size=5), st.booleans())
def test_invariants_hold_for_any_members(members: list[Member], override: bool) -> None:
    """Whatever the inputs: never bootstrap beside a Primary, never a behind or unknown node."""
    m = {x.node: x for x in members}
    d = plan(m, allow_unreachable=override)
    assert d.kind in ("bootstrap", "refuse", "nothing")
    if d.kind != "bootstrap":
        return
    assert not any(x.reachable and x.running and x.primary for x in m.values())
    if not override:
        assert all(x.reachable for x in m.values())
    chosen = m[d.node]
    assert chosen.reachable and chosen.uuid == d.uuid and d.uuid != ZERO_UUID
    top = max(
        (x.seqno for x in m.values() if x.reachable and x.uuid == d.uuid and x.seqno is not None),
        default=-1,
    )
    assert chosen.seqno == top and top >= 0
    assert all(
        x.uuid == ZERO_UUID or (x.seqno is not None and x.seqno >= 0)
        for x in m.values()
        if x.reachable
    )  # every position was known
    assert set(d.rejoin) == {x.node for x in m.values() if x.reachable} - {d.node}
    assert plan(m, allow_unreachable=override) == d  # deterministic
