"""Split-brain resolution: the lower-ranked holder of a VIP held twice yields it, for a bounded,
renewed time, and never so that the VIP is left without a holder."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from hactl.master.reactor.convergence.split_brain import split_brain
from hactl.minion.executors import dispatch
from hactl.minion.executors.base import ExecContext
from hactl.minion.vrrp_yield import VrrpSettings, YieldKeeper
from hactl.schema import SchemaError
from hactl.wire.commands import CommandRequest
from hactl.wire.envelope import new_event
from hactl.wire.maint import Maintenance
from hactl.wire.vrrp import VrrpAnnounce, VrrpYield
from tests.support.membus import MemBus
from tests.unit.test_reconciler import NODES, ev, healthy_view, once, reconciler, sent

VIP = "192.0.2.10"


def vrrp(
    node: str,
    state: str,
    prio: int,
    *,
    here: bool | None = None,
    yielded: bool = False,
    since: float | None = None,
) -> Any:
    """VI_INTERNAL of ``node`` with its VIP (MASTER/BACKUP since ``since``: unknown if None)."""
    item = {
        "vips": [VIP],
        "state": state,
        "priority": prio,
        "since": since,
        "vip_here": state == "MASTER" if here is None else here,
        "yielded": yielded,
    }
    return ev(node, "vrrp", {"VI_INTERNAL": item})


def yields(bus: MemBus) -> list[tuple[str, int]]:
    """(node, seconds) of every vrrp.yield sent, in order."""
    return [(t, a["seconds"]) for t, c, a in bus.requests if c == "vrrp.yield"]


def beat(view: Any, node: str, at: float | None = None) -> None:
    """A heartbeat of ``node`` (stored at ``at``; now when None)."""
    view.update(new_event(f"hactl/minion/{node}/heartbeat", node, {}), at)


def split_view() -> Any:
    """ctl1 (150) and ctl2 (100) both MASTER with the VIP, ctl1 heard after ctl2 took it (a
    real split, both alive); ctl3 BACKUP."""
    view = healthy_view()
    view.update(vrrp("ctl1", "MASTER", 150))
    view.update(vrrp("ctl2", "MASTER", 100))
    for n in NODES:
        beat(view, n)
    return view


def test_a_dead_holders_last_report_is_no_split() -> None:
    """The holder powered off: its last report still says MASTER, the node that took the VIP
    over reports MASTER too; nobody yields until the old holder is heard after that report
    (a real split), and a keeper silent for ``fresh`` seconds keeps nobody yielding."""
    view = healthy_view()
    t = time.time()
    view.update(vrrp("ctl1", "MASTER", 150), t)
    for n in NODES:
        beat(view, n, t)
    view.update(vrrp("ctl2", "MASTER", 100), t + 0.7)  # ctl1 died at t; ctl2 took over
    assert split_brain(view.nodes, as_of=view.as_of) == []
    beat(view, "ctl1", t + 1.5)  # it was alive after all: a split
    [y] = split_brain(view.nodes, as_of=view.as_of)
    assert (y.node, y.want, y.keeper) == ("ctl2", True, "ctl1")
    view.update(vrrp("ctl2", "FAULT", 100, yielded=True), t + 4.0)
    [y] = split_brain(view.nodes, as_of=view.as_of)
    assert (y.node, y.want) == ("ctl2", True)
    for n in ("ctl2", "ctl3"):
        beat(view, n, t + 7.0)  # ctl1 silent 5.5 s: no evidence it still holds
    [y] = split_brain(view.nodes, as_of=view.as_of)
    assert (y.node, y.want) == ("ctl2", False) and "no other node holds" in y.fact


def yielder(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
    """A minion that accepts yields and runtime commands."""
    return {"result": True, "comment": "done"}


def test_policy_lower_priority_yields_ties_by_node_id() -> None:
    """Two holders: the lower priority yields; equal priorities: the higher node id yields."""
    view = split_view()
    [y] = split_brain(view.nodes)
    assert (y.node, y.want, y.yielded) == ("ctl2", True, False)
    assert "split brain" in y.fact and "ctl1 ranks first" in y.fact
    view.update(vrrp("ctl2", "MASTER", 150))
    assert [y.node for y in split_brain(view.nodes)] == ["ctl2"]


def test_policy_the_incumbent_keeps_the_vip_whatever_its_priority() -> None:
    """nopreempt left the VIP on ctl2 (100); ctl1 (150), cut off, elects itself later: ctl1,
    the newcomer, yields -- the clients on ctl2 stay where they are."""
    view = healthy_view()
    view.update(vrrp("ctl2", "MASTER", 100, since=1000.0))
    view.update(vrrp("ctl1", "MASTER", 150, since=1900.0))
    for n in NODES:
        beat(view, n)
    [y] = split_brain(view.nodes)
    assert (y.node, y.want, y.keeper) == ("ctl1", True, "ctl2")
    assert "ctl2 ranks first (MASTER the longest" in y.fact


def test_policy_one_holder_or_unheard_holder_is_no_split() -> None:
    """One holder: nothing; a second holder nobody hears is not evidence of a split."""
    view = healthy_view()
    view.update(vrrp("ctl1", "MASTER", 150))
    assert split_brain(view.nodes) == []
    view = split_view()
    view.nodes["ctl2"]["minion"] = {"lost": True}
    assert split_brain(view.nodes) == []


def test_policy_a_yield_is_kept_only_while_another_node_holds_the_vip() -> None:
    """ctl2 yielding while ctl1 holds: keep; ctl1 loses the VIP too: ctl2's yield ends."""
    view = healthy_view()
    view.update(vrrp("ctl1", "MASTER", 150))
    view.update(vrrp("ctl2", "FAULT", 100, yielded=True))
    [y] = split_brain(view.nodes)
    assert (y.node, y.want, y.yielded) == ("ctl2", True, True)
    view.update(vrrp("ctl1", "FAULT", 150))
    [y] = split_brain(view.nodes)
    assert (y.node, y.want) == ("ctl2", False) and f"no other node holds {VIP}" in y.fact


def test_policy_maintenance_and_untrusted_facts_hold_the_yield() -> None:
    """keepalived under maintenance on the loser, or a master that cannot trust its facts:
    held with the reason (so a running yield is not renewed and ends by itself)."""
    view = split_view()
    window = Maintenance("ctl2", "keepalived", "swap NIC")
    [y] = split_brain(view.nodes, [window])
    assert y.held.startswith("maintenance: ctl2/keepalived (swap NIC)")
    [y] = split_brain(view.nodes, [], "consumer silent 20 s")
    assert y.held == "untrusted: consumer silent 20 s"


def test_a_holder_known_only_from_the_restored_view_starts_no_yield() -> None:
    """A restarted master read ctl1 as MASTER from KV, while ctl1 has been yielding since (a
    report its predecessor could not store): no new yield on that record; once ctl1 reports
    (the resync), the real state decides -- it keeps yielding, or a real split makes it
    yield."""
    view = split_view()
    view.restored.add(("ctl1", "vrrp"))
    assert split_brain(view.nodes, as_of=view.as_of, restored=view.restored) == []
    view.update(vrrp("ctl1", "FAULT", 150, yielded=True))  # its report after the resync
    assert ("ctl1", "vrrp") not in view.restored
    [y] = split_brain(view.nodes, as_of=view.as_of, restored=view.restored)
    assert (y.node, y.want, y.yielded) == ("ctl1", True, True) and "keeps yielding" in y.fact
    view = split_view()
    view.restored.add(("ctl1", "vrrp"))
    view.update(vrrp("ctl1", "MASTER", 150))  # reported again, unchanged: fresh evidence
    for n in NODES:
        beat(view, n)
    [y] = split_brain(view.nodes, as_of=view.as_of, restored=view.restored)
    assert (y.node, y.want, y.yielded) == ("ctl2", True, False) and "split brain" in y.fact


async def test_a_restarted_reconciler_waits_for_a_report_before_a_yield() -> None:
    """The reconciler of a master that read a split from KV sends no yield however long the
    restored record stays unconfirmed, and yields once both holders have reported."""
    view, bus = split_view(), MemBus()
    view.restored.add(("ctl2", "vrrp"))
    rec, _, clock = reconciler(view, bus)
    for n in NODES:
        bus.minions[n] = yielder
    for _ in range(5):
        await once(rec)
        clock.t += 2.5
    assert yields(bus) == []
    view.update(vrrp("ctl2", "MASTER", 100))
    for n in NODES:
        beat(view, n)
    await once(rec)
    clock.t += 2.5
    await once(rec)
    assert yields(bus) == [("ctl2", 15)]


async def test_reconciler_yields_after_the_debounce_and_audits_the_fact() -> None:
    """A split shorter than the debounce (a VIP move) sends nothing; one that lasts makes
    ctl2 yield for the yield TTL, audited with the split as the fact."""
    view, bus = split_view(), MemBus()
    rec, _, clock = reconciler(view, bus)
    for n in NODES:
        bus.minions[n] = yielder
    await once(rec)
    assert yields(bus) == []
    clock.t += 2.5
    await once(rec)
    assert yields(bus) == [("ctl2", 15)]
    [done] = [e for e in bus.audit("done") if e.data.get("instance") == "VI_INTERNAL"]
    assert done.data["key"] == "ctl2:vrrp/VI_INTERNAL" and "split brain" in done.data["fact"]
    assert (done.data["from"], done.data["to"]) == ("holding", "yield")


async def test_reconciler_renews_then_probes_and_a_returning_split_doubles_the_hold() -> None:
    """While ctl1 holds, ctl2's yield is renewed each interval; after the 30 s hold it is
    ended (the probe); the split coming back makes the next hold 60 s."""
    view, bus = split_view(), MemBus()
    rec, _, clock = reconciler(view, bus)
    for n in NODES:
        bus.minions[n] = yielder
    await once(rec)
    clock.t += 2.5
    await once(rec)
    view.update(vrrp("ctl2", "FAULT", 100, yielded=True))
    for _ in range(5):
        clock.t += 5.0
        await once(rec)
    # always the full TTL: the hold is ended by the master, audited (not left to lapse)
    assert [s for _, s in yields(bus)] == [15] * 6
    clock.t += 10.0
    await once(rec)
    assert yields(bus)[-1] == ("ctl2", 0)
    probe = [e for e in bus.audit("done") if e.data.get("to") == "end"]
    assert probe and "held 30 s" in probe[-1].data["fact"]
    view.update(vrrp("ctl2", "MASTER", 100))  # the split is back
    beat(view, "ctl1")
    await once(rec)
    clock.t += 2.5
    await once(rec)
    assert yields(bus)[-1] == ("ctl2", 15)
    assert rec.splits.keys["ctl2:vrrp/VI_INTERNAL"].hold == 60.0


def announces(bus: MemBus) -> list[tuple[str, dict[str, Any]]]:
    """(node, args) of every vrrp.announce sent, in order."""
    return [(t, a) for t, c, a in bus.requests if c == "vrrp.announce"]


async def test_keeper_announces_once_the_yielder_released_the_vip() -> None:
    """After a split the yielder's announcements may still steer neighbours to its MAC: once
    its VIP is gone the keeper (ctl1) is told to announce it, once per yield, audited; not
    while the yielder still has the address."""
    view, bus = split_view(), MemBus()
    rec, _, clock = reconciler(view, bus)
    for n in NODES:
        bus.minions[n] = yielder
    await once(rec)
    clock.t += 2.5
    await once(rec)
    assert yields(bus) == [("ctl2", 15)] and announces(bus) == []
    view.update(vrrp("ctl2", "MASTER", 100, here=True, yielded=True))  # file written, not yet FAULT
    await once(rec)
    assert announces(bus) == []
    view.update(vrrp("ctl2", "FAULT", 100, yielded=True))
    await once(rec)
    assert announces(bus) == [("ctl1", {"instance": "VI_INTERNAL", "addresses": [VIP]})]
    [done] = [e for e in bus.audit("done") if e.data.get("to") == "announce"]
    assert done.data["key"] == "ctl1:vrrp/VI_INTERNAL" and "ctl2 released" in done.data["fact"]
    for _ in range(3):
        clock.t += 5.0
        await once(rec)
    assert len(announces(bus)) == 1  # renewals of the same yield do not announce again


async def _ctl2_yielding() -> tuple[Any, MemBus, Any]:
    """ctl1 holds the VIP, ctl2 yields it (a yield of an earlier master); one pass done."""
    view, bus = healthy_view(), MemBus()
    rec, _, _ = reconciler(view, bus)
    for n in NODES:
        bus.minions[n] = yielder
    view.update(vrrp("ctl1", "MASTER", 150))
    view.update(vrrp("ctl2", "FAULT", 100, yielded=True))
    await once(rec)
    return view, bus, rec


async def test_reconciler_ends_a_yield_at_once_when_no_other_node_holds_the_vip() -> None:
    """ctl2 yielding and ctl1 dies (no holder left): the yield ends in the next pass, not at
    its deadline -- hactl never keeps a VIP without a holder."""
    view, bus, rec = await _ctl2_yielding()
    assert yields(bus) == [("ctl2", 15)]  # adopted (a yield of an earlier master) and renewed
    view.update(vrrp("ctl1", "FAULT", 150))
    await once(rec)
    assert yields(bus)[-1] == ("ctl2", 0)


async def test_a_yielding_node_is_healthy_its_api_servers_stay_in() -> None:
    """FAULT because of a yield is not a node fault: no API server of ctl2 is drained."""
    view, bus, rec = await _ctl2_yielding()
    assert [c for c in sent(bus) if c[3].startswith("ctl2/")] == []
    view.update(vrrp("ctl2", "FAULT", 100))  # a real FAULT: drained
    await once(rec)
    assert ("ctl1", "set_state", "be_nova_api", "ctl2/drain") in sent(bus)


def test_wire_contract_refuses_bad_announces() -> None:
    """vrrp.announce carries 1-8 IPv4 addresses of a valid instance, nothing else."""
    ask = VrrpAnnounce("VI_INTERNAL", (VIP,))
    assert VrrpAnnounce.from_args(ask.args()) == ask
    for args in (
        {"instance": "VI_1", "addresses": []},
        {"instance": "VI_1", "addresses": ["10.0.0.1/24"]},
        {"instance": "VI_1", "addresses": ["2001:db8::1"]},
        {"instance": "VI_1", "addresses": ["010.0.0.1"]},
        {"instance": "VI_1", "addresses": [1]},
        {"instance": "VI_1", "addresses": "10.0.0.1"},
        {"instance": "VI_1", "addresses": ["10.0.0.1"] * 9},
        {"instance": "../x", "addresses": ["10.0.0.1"]},
        {"instance": "VI_1", "addresses": ["10.0.0.1"], "iface": "eth0"},
    ):
        with pytest.raises(SchemaError):
            VrrpAnnounce.from_args(args)


def test_wire_contract_refuses_bad_yields() -> None:
    """The command's one contract: a bad instance name, a negative or too-long yield, a
    boolean for seconds are refused before anything is written."""
    assert VrrpYield("VI_INTERNAL", 15).args() == {"instance": "VI_INTERNAL", "seconds": 15}
    for args in (
        {"instance": "VI_1;rm", "seconds": 5},
        {"instance": "VI_1", "seconds": -1},
        {"instance": "VI_1", "seconds": 601},
        {"instance": "VI_1", "seconds": True},
        {"instance": "../x", "seconds": 1},
    ):
        with pytest.raises(SchemaError):
            VrrpYield.from_args(args)


async def test_minion_keeper_writes_the_tracked_file_and_ends_the_yield_itself(
    tmp_path: Path,
) -> None:
    """vrrp.yield writes 1 into the file keepalived tracks and 0 at the deadline; an instance
    not listed, a yield over max_seconds, or no vrrp section are refused with a reason."""
    keeper = YieldKeeper(VrrpSettings(str(tmp_path), ("VI_INTERNAL",), max_seconds=5))
    keeper.reset()
    ctx = ExecContext(minion_id="ctl2", vrrp=keeper)
    path = tmp_path / "yield_VI_INTERNAL"
    assert path.read_text() == "0\n"
    reply = await dispatch(
        ctx, CommandRequest("vrrp.yield", {"instance": "VI_INTERNAL", "seconds": 1})
    )
    assert reply.ok and reply.result["changes"] == {"yielded": True} and path.read_text() == "1\n"
    await asyncio.sleep(1.2)
    assert path.read_text() == "0\n"
    for args, why in (
        ({"instance": "VI_EXTERNAL", "seconds": 1}, "not an instance this node may yield"),
        ({"instance": "VI_INTERNAL", "seconds": 6}, "over this node's max_seconds"),
    ):
        reply = await dispatch(ctx, CommandRequest("vrrp.yield", args))
        assert not reply.ok and why in reply.error_message
    assert path.read_text() == "0\n"
    bare = await dispatch(
        ExecContext(minion_id="x"), CommandRequest("vrrp.yield", {"instance": "VI_1", "seconds": 1})
    )
    assert not bare.ok and "no vrrp section" in bare.error_message
    keeper.set("VI_INTERNAL", 5)
    written = path.stat().st_mtime_ns
    keeper.set("VI_INTERNAL", 5)  # a renewal moves the deadline, the file is not rewritten
    assert path.stat().st_mtime_ns == written and path.read_text() == "1\n"
    keeper.close()  # a stopping minion leaves no yield behind
    assert path.read_text() == "0\n"
