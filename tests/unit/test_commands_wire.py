"""Command request/reply messages."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hactl.errors import DecodeError, EncodeError, RejectReason
from hactl.wire.commands import (
    CommandReply,
    CommandRequest,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
    error_reply,
)


def test_request_round_trip() -> None:
    """A request keeps its jid, command, args and sender."""
    req = CommandRequest(
        cmd="haproxy.runtime", args={"verb": "set_weight", "weight": 50}, sender="master"
    )
    assert decode_request(encode_request(req)) == req


def test_reply_round_trip_ok_and_error() -> None:
    """Both successful and failed replies survive the wire."""
    ok = CommandReply(jid="01M7Y8WRXH0JEWBTVH6AEPRR21", ok=True, result={"pong": True})
    assert decode_reply(encode_reply(ok)) == ok
    bad = error_reply("01M7Y8WRXH0JEWBTVH6AEPRR21", "Refused", "path outside allowed roots")
    assert decode_reply(encode_reply(bad)) == bad


def test_bad_command_names_are_not_sent() -> None:
    """Command names are dotted lower-case identifiers."""
    with pytest.raises(EncodeError):
        encode_request(CommandRequest(cmd="rm -rf /"))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"v": 1, "jid": "x", "cmd": "test.ping", "args": {}, "sender": "c"},
            RejectReason.BAD_TYPE,
        ),
        ({"v": 3}, RejectReason.UNKNOWN_VERSION),
        (
            {"v": 1, "jid": "01M7Y8WRXH0JEWBTVH6AEPRR21", "cmd": "test.ping", "args": {}},
            RejectReason.MISSING_FIELD,
        ),
        (
            {
                "v": 1,
                "jid": "01M7Y8WRXH0JEWBTVH6AEPRR21",
                "cmd": "Test Ping",
                "args": {},
                "sender": "c",
            },
            RejectReason.BAD_TYPE,
        ),
        (
            {
                "v": 1,
                "jid": "01M7Y8WRXH0JEWBTVH6AEPRR21",
                "cmd": "test.ping",
                "args": [],
                "sender": "c",
            },
            RejectReason.BAD_TYPE,
        ),
        (
            {
                "v": 1,
                "jid": "01M7Y8WRXH0JEWBTVH6AEPRR21",
                "cmd": "test.ping",
                "args": {},
                "sender": "c",
                "sudo": True,
            },
            RejectReason.UNKNOWN_FIELD,
        ),
    ],
)
def test_bad_requests_are_rejected_with_reason(
    body: dict[str, object], reason: RejectReason
) -> None:
    """Malformed requests raise DecodeError with a stable reason."""
    with pytest.raises(DecodeError) as info:
        decode_request(msgpack.packb(body))
    assert info.value.reason is reason


def test_unencodable_result_still_yields_an_error_reply() -> None:
    """A handler returning something msgpack cannot carry still produces an answer."""
    reply = decode_reply(encode_reply(CommandReply(jid="j", ok=True, result={"x": object()})))
    assert not reply.ok
    assert reply.error_type == "EncodeError"


@given(st.binary(max_size=512))
def test_arbitrary_request_bytes_only_raise_decode_error(payload: bytes) -> None:
    """Fuzzed command payloads never raise anything but DecodeError."""
    with contextlib.suppress(DecodeError):
        decode_request(payload)
