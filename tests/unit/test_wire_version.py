"""The wire version window: this build reads the version before, its own and the next (whose
extra fields it ignores), refuses anything else with one line naming both versions, and
refuses unknown fields in a message of its own version."""

from __future__ import annotations

import msgpack
import pytest

from hactl.errors import DecodeError, RejectReason
from hactl.wire.commands import (
    CommandReply,
    CommandRequest,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)
from hactl.wire.envelope import decode, encode, new_event
from hactl.wire.version import READS, WRITES, check


def _event_body(v: int, **extra: object) -> dict[str, object]:
    body = msgpack.unpackb(encode(new_event("hactl/beacon/ctl1/vrrp", "ctl1", {"s": 1})))
    return {**body, "v": v, **extra}


def test_the_window_is_the_version_before_its_own_and_the_next() -> None:
    """This build writes WRITES and reads from the one before (or itself at 1) to WRITES+1."""
    assert (max(1, WRITES - 1), WRITES + 1) == READS
    assert check(WRITES) is False and check(WRITES + 1) is True


def test_a_next_version_event_is_read_and_its_new_fields_ignored() -> None:
    """An event of v+1 with a field this build does not know decodes to the same event."""
    body = _event_body(WRITES + 1, trace="abc", hops=[1, 2])
    event = decode(msgpack.packb(body), subject="hactl.beacon.ctl1.vrrp")
    assert event.v == WRITES + 1 and event.data == {"s": 1} and event.tag.endswith("vrrp")


def test_an_unknown_field_of_this_version_is_still_refused() -> None:
    """Nothing legitimate of this version writes an unknown field: refused, as before."""
    with pytest.raises(DecodeError) as info:
        decode(msgpack.packb(_event_body(WRITES, trace="abc")))
    assert info.value.reason is RejectReason.UNKNOWN_FIELD


@pytest.mark.parametrize("v", [WRITES + 2, 0, 99])
def test_a_version_outside_the_window_is_refused_naming_both(v: int) -> None:
    """Events and commands alike: one line with the peer's version and this build's."""
    with pytest.raises(DecodeError) as info:
        decode(msgpack.packb(_event_body(v)), subject="hactl.beacon.ctl1.vrrp")
    err = info.value
    assert err.reason is RejectReason.UNKNOWN_VERSION
    assert f"wire version {v}" in str(err) and f"writes {WRITES}" in str(err)
    assert f"reads {READS[0]}-{READS[1]}" in str(err) and "\n" not in str(err)
    req = msgpack.unpackb(encode_request(CommandRequest(cmd="test.ping", args={})))
    with pytest.raises(DecodeError, match=f"wire version {v}: this build reads"):
        decode_request(msgpack.packb({**req, "v": v}))


def test_commands_of_the_next_version_run_and_their_replies_are_read() -> None:
    """A request and a reply from a v+1 peer, with new optional fields: decoded, fields
    dropped; the same extra field in this version's message is refused."""
    req = msgpack.unpackb(encode_request(CommandRequest(cmd="test.ping", args={"a": 1})))
    got = decode_request(msgpack.packb({**req, "v": WRITES + 1, "deadline": 5.0}))
    assert got.cmd == "test.ping" and dict(got.args) == {"a": 1}
    rep = msgpack.unpackb(encode_reply(CommandReply(jid=got.jid, ok=True, result={"x": 1})))
    back = decode_reply(msgpack.packb({**rep, "v": WRITES + 1, "took": 0.1}))
    assert back.ok and dict(back.result) == {"x": 1}
    with pytest.raises(DecodeError) as info:
        decode_request(msgpack.packb({**req, "deadline": 5.0}))
    assert info.value.reason is RejectReason.UNKNOWN_FIELD
