"""Approvals (issue 16): the record's contract, the rule syntax, and the shipped Galera
recovery asking a person when a member is unreachable -- approved, denied, expired -- on the
in-memory bus with an in-memory KV (compare-and-set)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from hactl import yamlsrc
from hactl.errors import DecodeError
from hactl.master.reactor.rules.actions import REGISTRY
from hactl.master.reactor.rules.approvals import Approvals
from hactl.master.reactor.rules.engine import Engine
from hactl.master.reactor.rules.rule import ApprovePolicy, RuleError, load_rules, parse_rules
from hactl.wire.approvals import AnswerRefused, Approval, answer, decode, encode, expire, key
from tests.support.membus import MemBus
from tests.support.memkv import MemKv
from tests.unit.test_reactor_engine import NODES, galera, position_minion

pytestmark = pytest.mark.unit

RULES = load_rules(Path(__file__).resolve().parents[2] / "reactors", REGISTRY)
A = Approval("01M8QG040F9HSACTTQYQ43CK07", "r", "k", "e", "hactl/x", "q?", {"a": 1}, 10.0, 70.0)


def test_the_record_round_trips_and_hostile_ones_are_refused() -> None:
    """A record survives KV; a tampered one (unknown field, bad state, bad id) does not."""
    assert decode(encode(A)) == A
    raw = json.loads(encode(A))
    for bad in (
        {**raw, "extra": 1},
        {**raw, "state": "maybe"},
        {**raw, "id": "../x"},
        {**raw, "default": "yes"},
        {**raw, "asked_at": "now"},
    ):
        with pytest.raises(DecodeError):
            decode(json.dumps(bad).encode())
    with pytest.raises(DecodeError):
        key("approval.x")


def test_an_answer_is_given_once_before_the_deadline() -> None:
    """Pending and in time: answered; twice, late or with control characters: refused;
    expired with default approve grants, with deny does not."""
    yes = answer(A, True, "UKEY", "looked at ctl3: dead disk", 20.0)
    assert yes.granted and yes.by == "UKEY"
    with pytest.raises(AnswerRefused, match="already approved"):
        answer(yes, False, "UOTHER", "no", 21.0)
    with pytest.raises(AnswerRefused, match="expired"):
        answer(A, True, "UKEY", "", 70.0)
    with pytest.raises(AnswerRefused, match="printable"):
        answer(A, True, "UKEY", "a\x1b[2J", 20.0)
    assert not expire(A, 71.0).granted
    assert expire(dataclasses.replace(A, default="approve"), 71.0).granted


def test_approve_in_a_rule_is_checked_at_load() -> None:
    """``approve`` parses into a policy; a bad one names file, line and rule."""
    text = (
        "- name: x\n  on: hactl/event/x\n  approve: {timeout: 30s}\n"
        "  do:\n    - event.fire: {tag: hactl/event/y}\n"
    )
    (rule,) = parse_rules(yamlsrc.load(text, "r.yaml"), REGISTRY)
    assert rule.approve == ApprovePolicy(30.0, "deny")
    with pytest.raises(RuleError, match=r"r\.yaml:3"):
        parse_rules(
            yamlsrc.load(text.replace("{timeout: 30s}", "{default: maybe}"), "r.yaml"), REGISTRY
        )
    shipped = next(r for r in RULES if r.name == "galera-cluster-down")
    assert shipped.approve == ApprovePolicy(600.0, "deny")


async def _recovery(policy: ApprovePolicy, person: Any) -> tuple[MemBus, MemKv]:
    """ctl3's minion silent, ctl1/ctl2 stopped at seqno 9/8: the recovery asks; ``person``
    answers (or not) through the KV as hactl approve/deny does."""
    kv, bus = MemKv(), MemBus()
    rule = dataclasses.replace(
        next(r for r in RULES if r.name == "galera-cluster-down"), approve=policy
    )
    eng = Engine([rule], bus)
    eng.approvals = Approvals(kv, poll=0.02)
    bus.minions["ctl1"] = position_minion(9)
    bus.minions["ctl2"] = position_minion(8)
    for n in NODES:
        eng.view.set(n, "galera", {"local": {"running": False, "synced": False}})
    run = asyncio.create_task(
        eng._actions(
            rule, galera("ctl1", synced=False, running=False), [("galera.recover_cluster", {})]
        )
    )
    await person(kv)
    await asyncio.wait_for(run, 10)
    return bus, kv


async def _pending(kv: MemKv) -> tuple[str, Approval, int]:
    for _ in range(200):
        for k, (value, rev) in kv.data.items():
            a = decode(value)
            if a.state == "pending":
                return k, a, rev
        await asyncio.sleep(0.01)
    raise AssertionError("no pending approval")


async def test_approved_the_recovery_bootstraps_the_most_advanced_reachable_member() -> None:
    """A pending decision with the exact plan; approved by a person: bootstrap ctl1 (seqno 9),
    ctl2 rejoins, ctl3 (unreachable) is left; done names who approved."""

    async def person(kv: MemKv) -> None:
        k, a, rev = await _pending(kv)
        assert a.plan["would"]["node"] == "ctl1" and a.plan["unreachable"] == ["ctl3"]
        await kv.update(
            k, encode(answer(a, True, "UALICE", "ctl3's disk is gone", a.asked_at + 1)), last=rev
        )

    bus, _ = await _recovery(ApprovePolicy(30.0, "deny"), person)
    assert len(bus.audit("pending")) == 1
    cmds = [(t, c) for t, c, _ in bus.requests if c not in ("galera.position", "test.ping")]
    assert cmds == [("ctl1", "galera.bootstrap"), ("ctl2", "galera.start")]
    (done,) = bus.audit("done")
    assert done.data["results"][0]["approval"]["by"] == "UALICE"


async def test_denied_nothing_is_started_and_the_refusal_says_who() -> None:
    """Denied: failed, with the person and the reason; no bootstrap, no start."""

    async def person(kv: MemKv) -> None:
        k, a, rev = await _pending(kv)
        await kv.update(
            k,
            encode(answer(a, False, "UBOB", "ctl3 comes back in 5 min", a.asked_at + 1)),
            last=rev,
        )

    bus, _ = await _recovery(ApprovePolicy(30.0, "deny"), person)
    (failed,) = bus.audit("failed")
    assert "denied by UBOB" in failed.data["error"] and "5 min" in failed.data["error"]
    assert not [c for _, c, _ in bus.requests if c in ("galera.bootstrap", "galera.start")]


async def test_unanswered_it_expires_to_its_default() -> None:
    """Nobody answers: default deny refuses (state expired in KV); default approve goes on."""

    async def nobody(kv: MemKv) -> None:
        await _pending(kv)

    bus, kv = await _recovery(ApprovePolicy(1.0, "deny"), nobody)
    (failed,) = bus.audit("failed")
    assert "expired" in failed.data["error"]
    assert [decode(v).state for v, _ in kv.data.values()] == ["expired"]
    bus, _ = await _recovery(ApprovePolicy(1.0, "approve"), nobody)
    assert len(bus.audit("done")) == 1


async def test_an_old_approval_copied_onto_the_question_is_refused() -> None:
    """Trust III: an approved record of another question (another id, another plan) written
    onto the pending key is not an answer: the recovery is refused, nothing is started."""

    async def forger(kv: MemKv) -> None:
        k, _, rev = await _pending(kv)
        old = dataclasses.replace(A, plan={"would": {"node": "ctl3"}})
        copied = answer(old, True, "UMALLORY", "copied", old.asked_at + 1)
        await kv.update(k, encode(copied), last=rev)

    bus, _ = await _recovery(ApprovePolicy(30.0, "approve"), forger)
    (failed,) = bus.audit("failed")
    assert "denied" in failed.data["error"] or "expired" in failed.data["error"]
    assert not [c for _, c, _ in bus.requests if c in ("galera.bootstrap", "galera.start")]
