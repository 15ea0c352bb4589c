"""Singleton contract (hactl/wire/singleton.py) and placement (master/singletons/placement.py):
pure functions, hostile input refused with a reason."""

from __future__ import annotations

import json

import pytest

from hactl.errors import DecodeError
from hactl.master.singletons.placement import Candidate, choose, revoke_reason, vip_holders
from hactl.schema import SchemaError
from hactl.wire.singleton import (
    DRIFT,
    MARGIN,
    Grant,
    LeaseRecord,
    RenewItem,
    SingletonSpec,
    decode_lease,
    decode_spec,
    encode_lease,
    encode_reply,
    encode_request,
    encode_spec,
    expires_after,
    node_of_subject,
    renew_reply,
    renew_request,
    renew_subject,
    stop_at,
)

pytestmark = pytest.mark.unit

SPEC = SingletonSpec("nova-scheduler", "nova-scheduler", ("ctl1", "ctl2", "ctl3"), ("ctl2",))


def test_spec_round_trips_and_checks_its_timing() -> None:
    """A spec survives KV; a lease too short to survive one lost renewal is refused."""
    assert decode_spec(encode_spec(SPEC)) == SPEC
    with pytest.raises(SchemaError, match="one lost renewal"):
        SingletonSpec("x", "x", ("ctl1",), lease=3, renew=1, stop_timeout=1.5)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ({"name": "X", "service": "s", "nodes": ["ctl1"]}, "name"),
        ({"name": "x", "service": "s; rm", "nodes": ["ctl1"]}, "service"),
        ({"name": "x", "service": "s", "nodes": []}, "nodes"),
        ({"name": "x", "service": "s", "nodes": ["ctl1", "ctl1"]}, "nodes"),
        ({"name": "x", "service": "s", "nodes": ["ctl1"], "prefer": ["ctl9"]}, "prefer"),
        ({"name": "x", "service": "s", "nodes": ["a.b"]}, "nodes"),
        ({"name": "x", "service": "s", "nodes": ["ctl1"], "lease": 1}, "lease"),
        ({"name": "x", "service": "s", "nodes": ["ctl1"], "with_vip": "1x"}, "with_vip"),
        ({"name": "x", "service": "s", "nodes": ["ctl1"], "shell": "sh"}, "unknown"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(args: dict[str, object], why: str) -> None:
    """Every bad spec field is refused by the one schema mechanism, naming it."""
    with pytest.raises(SchemaError, match=why):
        SingletonSpec.from_args(args)


def test_the_fencing_arithmetic() -> None:
    """The holder stops its copy stop_timeout before sent + lease; the master waits the lease
    stretched by DRIFT plus MARGIN after it heard the renewal, so always after."""
    sent, heard = 100.0, 100.0  # the master hears it no earlier than it was sent
    assert stop_at(sent, SPEC) + SPEC.stop_timeout == sent + SPEC.lease
    assert heard + expires_after(SPEC) == pytest.approx(heard + SPEC.lease * (1 + DRIFT) + MARGIN)
    assert heard + expires_after(SPEC) > sent + SPEC.lease


def test_renewal_request_and_reply_round_trip() -> None:
    """The contract both sides speak."""
    items = [RenewItem("nova-scheduler", 7, True, False, 1)]
    assert renew_request(encode_request(items)) == items
    leader, grants = renew_reply(encode_reply(True, {"nova-scheduler": Grant(True, 7)}))
    assert leader and grants["nova-scheduler"] == Grant(True, 7, "")
    assert node_of_subject(renew_subject("ctl2")) == "ctl2"


def _item(**over: object) -> bytes:
    item = {"name": "x", "token": 1, "running": True, "release": False, "failures": 0, **over}
    return json.dumps({"items": [item]}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"items": {}}',
        b'{"items": [], "extra": 1}',
        _item(token=-1),
        _item(running="yes"),
        _item(token=True),
        _item(failures=1.5),
        b'{"items": [{"name": "x", "token": 1, "running": true, "release": false}]}',
        json.dumps(
            {
                "items": [
                    {"name": "x", "token": 0, "running": False, "release": False, "failures": 0}
                ]
                * 2
            }
        ).encode(),
        b"{" + b" " * 5000 + b"}",
    ],
)
def test_hostile_renewals_are_refused(body: bytes) -> None:
    """Malformed, mistyped, oversized, duplicated: a DecodeError, never a partial read."""
    with pytest.raises(DecodeError):
        renew_request(body)


def test_hostile_replies_and_records_are_refused() -> None:
    """A reply or lease record that does not fit is refused; a subject that is not a
    renewal names no node."""
    for body in (b'{"leader": 1, "grants": {}}', b'{"leader": true, "grants": {"x": {"hold": 1}}}'):
        with pytest.raises(DecodeError):
            renew_reply(body)
    assert decode_lease(encode_lease(LeaseRecord("x", "ctl1", 1.0, "master"))).holder == "ctl1"
    for rec in (b'{"name": "x", "holder": "a b"}', b'{"name": "x", "owner": "ctl1"}'):
        with pytest.raises(DecodeError):
            decode_lease(rec)
    for subject in ("hactl.lease.ctl1", "hactl.lease.*.renew", "hactl.cmd.ctl1.renew"):
        with pytest.raises(DecodeError):
            node_of_subject(subject)


def _cands(**over: Candidate) -> dict[str, Candidate]:
    base = {n: Candidate(n, heard=True) for n in ("ctl1", "ctl2", "ctl3")}
    return {**base, **over}


def test_choose_follows_target_vip_prefer_then_id() -> None:
    """An operator's target first, then the VIP holder, then the preference, then node id;
    nodes silent, failed past the threshold or in maintenance are skipped, with reasons."""
    vip = SingletonSpec("s", "s", ("ctl1", "ctl2", "ctl3"), ("ctl2",), with_vip="VI_INTERNAL")
    assert choose(vip, _cands(), target="ctl3")[0] == "ctl3"
    assert choose(vip, _cands(), vip_holder="ctl1")[0] == "ctl1"
    assert choose(vip, _cands())[0] == "ctl2"
    skip = _cands(ctl2=Candidate("ctl2", True, failures=2), ctl1=Candidate("ctl1", False))
    assert choose(vip, skip, vip_holder="ctl1")[0] == "ctl3"
    node, why = choose(
        vip,
        {
            "ctl1": Candidate("ctl1", False),
            "ctl2": Candidate("ctl2", True, failures=5),
            "ctl3": Candidate("ctl3", True, maintenance="kernel update"),
        },
    )
    assert node == "" and "not renewing" in why and "failed it 5" in why and "kernel" in why


def test_revoke_reasons() -> None:
    """The holder gives the singleton up at the threshold, in maintenance, when moved to an
    eligible node, or when no longer allowed; otherwise keeps it."""
    assert revoke_reason(SPEC, Candidate("ctl1", True)) == ""
    assert "threshold" in revoke_reason(SPEC, Candidate("ctl1", True, failures=2))
    assert "maintenance" in revoke_reason(SPEC, Candidate("ctl1", True, maintenance="m"))
    assert "moves it" in revoke_reason(SPEC, Candidate("ctl1", True), target="ctl2", target_ok=True)
    assert revoke_reason(SPEC, Candidate("ctl1", True), target="ctl2", target_ok=False) == ""
    assert "no longer" in revoke_reason(SPEC, Candidate("ctl9", True))


def test_vip_holders_from_the_view() -> None:
    """Which node holds each VRRP instance, from the vrrp beacons' vip_here."""
    nodes = {
        "ctl1": {"vrrp": {"VI_INTERNAL": {"vip_here": False}}},
        "ctl2": {"vrrp": {"VI_INTERNAL": {"vip_here": True}, "_keepalived": {"error": ""}}},
    }
    assert vip_holders(nodes) == {"VI_INTERNAL": "ctl2"}
