"""The strict msgpack event codec."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hactl.errors import DecodeError, EncodeError, RejectReason
from hactl.wire.envelope import MAX_EVENT_BYTES, Event, decode, encode, new_event

GOLDEN_ID = "01M7Y8WRXH0JEWBTVH6AEPRR21"
# The wire format pinned: a map in field order, msgpack bin type for bytes.
GOLDEN = bytes.fromhex(
    "86a17601a26964ba30314d37593857525848304a4557425456483641455052523231a3746167b668"
    "6163746c2f626561636f6e2f63746c312f76727270a66d696e696f6ea463746c31a27473cb41dac0"
    "4b3fa00000a46461746182a57374617465a64d4153544552a570726f6f66c403010203"
)


def _raw(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": 1,
        "id": GOLDEN_ID,
        "tag": "hactl/beacon/ctl1/vrrp",
        "minion": "ctl1",
        "ts": 1795239166.5,
        "data": {"state": "MASTER"},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not _DROP}


_DROP = object()


def _reason(payload: bytes, subject: str | None = "hactl.beacon.ctl1.vrrp") -> RejectReason:
    with pytest.raises(DecodeError) as info:
        decode(payload, subject)
    return info.value.reason


def test_golden_bytes_decode_and_re_encode_identically() -> None:
    """The pinned wire bytes decode to the expected event and encode back to the same bytes."""
    event = Event(
        id=GOLDEN_ID,
        tag="hactl/beacon/ctl1/vrrp",
        minion="ctl1",
        ts=1795239166.5,
        data={"state": "MASTER", "proof": b"\x01\x02\x03"},
    )
    assert encode(event) == GOLDEN
    assert decode(GOLDEN, "hactl.beacon.ctl1.vrrp") == event


def test_new_event_round_trips() -> None:
    """A fresh event survives encode/decode unchanged, subject included."""
    event = new_event(
        "hactl/beacon/ctl2/haproxy",
        "ctl2",
        {"servers": [{"name": "web1", "status": "UP", "weight": 1}], "n": None},
    )
    assert decode(encode(event), event.subject) == event


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xc1", RejectReason.MALFORMED),
        (b"not msgpack at all \xff\xfe", RejectReason.MALFORMED),
        (msgpack.packb(_raw()) + b"\x00", RejectReason.MALFORMED),
        (msgpack.packb([1, 2, 3]), RejectReason.NOT_A_MAP),
        (msgpack.packb(_raw(v=3)), RejectReason.UNKNOWN_VERSION),
        (msgpack.packb(_raw(v=_DROP)), RejectReason.MISSING_FIELD),
        (msgpack.packb(_raw(v="1")), RejectReason.BAD_TYPE),
        (msgpack.packb(_raw(v=True)), RejectReason.BAD_TYPE),
        (msgpack.packb(_raw(data=_DROP)), RejectReason.MISSING_FIELD),
        (msgpack.packb(_raw(extra=1)), RejectReason.UNKNOWN_FIELD),
        (msgpack.packb(_raw(id="abc")), RejectReason.BAD_TYPE),
        (msgpack.packb(_raw(ts="now")), RejectReason.BAD_TYPE),
        (msgpack.packb(_raw(ts=float("nan"))), RejectReason.BAD_TYPE),
        (msgpack.packb(_raw(data=[1])), RejectReason.BAD_TYPE),
        (msgpack.packb(_raw(data={"k": msgpack.ExtType(5, b"x")})), RejectReason.BAD_TYPE),
        (msgpack.packb(_raw(tag="salt/beacon/ctl1/vrrp")), RejectReason.BAD_TAG),
        (
            msgpack.packb(_raw(tag="hactl/beacon/ctl2/vrrp", minion="ctl2")),
            RejectReason.SUBJECT_MISMATCH,
        ),
        (msgpack.packb(_raw(minion="ctl2")), RejectReason.ORIGIN_MISMATCH),
        (msgpack.packb(_raw(minion="master")), RejectReason.ORIGIN_MISMATCH),
        (b"\x80" * (MAX_EVENT_BYTES + 1), RejectReason.OVERSIZE),
    ],
)
def test_every_rejection_has_its_reason(payload: bytes, reason: RejectReason) -> None:
    """Each kind of bad message is rejected with its own stable reason label."""
    assert _reason(payload) is reason


def test_non_string_map_keys_are_malformed() -> None:
    """Integer map keys are refused by the strict unpacker."""
    assert _reason(msgpack.packb({1: 2})) is RejectReason.MALFORMED


def test_deep_nesting_is_refused() -> None:
    """Data nested deeper than the limit is a bad_type, not a recursion crash."""
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    assert _reason(msgpack.packb(_raw(data={"d": deep}))) is RejectReason.BAD_TYPE


def test_encode_refuses_what_decode_would_reject() -> None:
    """Oversized data and a lying origin never leave the process."""
    with pytest.raises(EncodeError):
        new_event("hactl/beacon/ctl1/vrrp", "ctl2")
    with pytest.raises(EncodeError):
        encode(new_event("hactl/event/big", "ctl1", {"blob": b"x" * MAX_EVENT_BYTES}))
    with pytest.raises(EncodeError):
        new_event("hactl/event/x", "ctl1", {"obj": object()})


def test_decode_without_subject_skips_subject_check() -> None:
    """Replayed or stored events can be decoded on their own."""
    assert decode(msgpack.packb(_raw()), None).tag == "hactl/beacon/ctl1/vrrp"


def test_as_json_base64s_bytes() -> None:
    """Binary data becomes {'$base64': ...} so --json output is always valid JSON."""
    event = new_event("hactl/event/x", "ctl1", {"b": b"\x00\xff", "nested": [{"c": b"a"}]})
    data = event.as_json()["data"]
    assert data == {"b": {"$base64": "AP8="}, "nested": [{"c": {"$base64": "YQ=="}}]}


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text()
    | st.binary(max_size=32)
    | st.floats(allow_nan=False)
)
values = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)


@given(
    ids,
    ids,
    st.dictionaries(st.text(max_size=10), values, max_size=6),
    st.floats(min_value=0, max_value=4e9),
)
def test_round_trip_property(minion: str, beacon: str, data: dict[str, Any], ts: float) -> None:
    """Any valid event decodes to itself (lists come back as lists)."""
    event = new_event(f"hactl/beacon/{minion}/{beacon}", minion, data, ts=ts)
    assert decode(encode(event), event.subject) == event


@settings(max_examples=500)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_raise_decode_error(payload: bytes) -> None:
    """Hostile bytes never raise anything but DecodeError."""
    with contextlib.suppress(DecodeError):
        decode(payload, "hactl.beacon.ctl1.vrrp")


@given(
    st.dictionaries(
        st.sampled_from(["v", "id", "tag", "minion", "ts", "data", "x"]), values, max_size=7
    )
)
def test_arbitrary_maps_only_raise_decode_error(obj: dict[str, Any]) -> None:
    """Well-formed msgpack maps with any fields and values never crash the decoder."""
    with contextlib.suppress(DecodeError):
        decode(msgpack.packb(obj, use_bin_type=True), "hactl.beacon.ctl1.vrrp")


@pytest.mark.parametrize("ts", [1e308, -1e308, 1e20])
def test_an_absurd_timestamp_renders_without_crashing(ts: float) -> None:
    """`events tail` shows an event whose ts is out of range instead of dying on it."""
    from hactl.cli.events import render_text

    event = new_event("hactl/event/x", "master", {})
    text = render_text(dataclasses.replace(event, ts=ts))
    assert "out of range" in text
