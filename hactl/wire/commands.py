"""Command request/reply messages on ``hactl.cmd.<id>`` (pure functions, no I/O).

Request: ``{v, jid, cmd, args, sender}``. Reply: ``{v, jid, ok, result, error}`` where ``error``
is ``{type, message}`` when ``ok`` is false. Both are strict like the event envelope: an
undecodable request gets an error reply, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from hactl.errors import DecodeError, EncodeError, RejectReason
from hactl.wire.envelope import MAX_EVENT_BYTES, SCHEMA_VERSION, _check_value
from hactl.wire.ids import is_id, new_id
from hactl.wire.version import check as check_version

_CMD = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\Z")


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """One command for a minion or the master."""

    cmd: str
    args: Mapping[str, Any] = field(default_factory=dict)
    sender: str = "cli"
    jid: str = field(default_factory=new_id)


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The answer to a :class:`CommandRequest`."""

    jid: str
    ok: bool
    result: Mapping[str, Any] = field(default_factory=dict)
    error_type: str = ""
    error_message: str = ""


def _pack(body: dict[str, Any]) -> bytes:
    problem = _check_value(body, 0)
    if problem:
        raise EncodeError(problem)
    payload: bytes = msgpack.packb(body, use_bin_type=True)
    if len(payload) > MAX_EVENT_BYTES:
        raise EncodeError(f"{len(payload)} bytes is over the {MAX_EVENT_BYTES}-byte limit")
    return payload


def _unpack(payload: bytes, fields: tuple[str, ...]) -> dict[str, Any]:
    if len(payload) > MAX_EVENT_BYTES:
        raise DecodeError(RejectReason.OVERSIZE, f"{len(payload)} bytes")
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=True, timestamp=0)
    except Exception as exc:
        raise DecodeError(RejectReason.MALFORMED, type(exc).__name__) from None
    if not isinstance(obj, dict):
        raise DecodeError(RejectReason.NOT_A_MAP, type(obj).__name__)
    if "v" not in obj:
        raise DecodeError(RejectReason.MISSING_FIELD, "v")
    newer = check_version(obj["v"])
    for name in fields:
        if name not in obj:
            raise DecodeError(RejectReason.MISSING_FIELD, name)
    extra = sorted(str(k) for k in obj if k not in fields and k != "v")
    if extra and newer:  # a newer peer's optional fields: ignored
        obj = {k: v for k, v in obj.items() if k in fields or k == "v"}
    elif extra:
        raise DecodeError(RejectReason.UNKNOWN_FIELD, ", ".join(extra)[:200])
    problem = _check_value(obj, 0)
    if problem:
        raise DecodeError(RejectReason.BAD_TYPE, problem)
    return obj


def encode_request(req: CommandRequest) -> bytes:
    """Serialize a command request."""
    if not _CMD.match(req.cmd):
        raise EncodeError(f"bad command name {req.cmd!r}")
    body = {
        "v": SCHEMA_VERSION,
        "jid": req.jid,
        "cmd": req.cmd,
        "args": dict(req.args),
        "sender": req.sender,
    }
    return _pack(body)


def decode_request(payload: bytes) -> CommandRequest:
    """Parse a command request; raises :class:`DecodeError` only."""
    obj = _unpack(payload, ("jid", "cmd", "args", "sender"))
    jid, cmd, args, sender = obj["jid"], obj["cmd"], obj["args"], obj["sender"]
    if not isinstance(jid, str) or not is_id(jid):
        raise DecodeError(RejectReason.BAD_TYPE, "jid must be a sortable id")
    if not isinstance(cmd, str) or not _CMD.match(cmd):
        raise DecodeError(RejectReason.BAD_TYPE, "cmd must be a dotted lower-case name")
    if not isinstance(args, dict):
        raise DecodeError(RejectReason.BAD_TYPE, "args must be a map")
    if not isinstance(sender, str):
        raise DecodeError(RejectReason.BAD_TYPE, "sender must be a string")
    return CommandRequest(cmd=cmd, args=args, sender=sender, jid=jid)


def encode_reply(reply: CommandReply) -> bytes:
    """Serialize a command reply."""
    body: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "jid": reply.jid,
        "ok": reply.ok,
        "result": dict(reply.result),
    }
    body["error"] = None if reply.ok else {"type": reply.error_type, "message": reply.error_message}
    try:
        return _pack(body)
    except EncodeError as exc:
        # A result too big or of the wrong type must still produce an answer.
        return _pack(
            {
                "v": SCHEMA_VERSION,
                "jid": reply.jid,
                "ok": False,
                "result": {},
                "error": {"type": "EncodeError", "message": exc.detail},
            }
        )


def decode_reply(payload: bytes) -> CommandReply:
    """Parse a command reply; raises :class:`DecodeError` only."""
    obj = _unpack(payload, ("jid", "ok", "result", "error"))
    jid, ok, result, error = obj["jid"], obj["ok"], obj["result"], obj["error"]
    if not isinstance(jid, str) or not isinstance(ok, bool) or not isinstance(result, dict):
        raise DecodeError(RejectReason.BAD_TYPE, "jid/ok/result have the wrong type")
    if ok:
        return CommandReply(jid=jid, ok=True, result=result)
    if not isinstance(error, dict):
        raise DecodeError(RejectReason.BAD_TYPE, "a failed reply carries an error map")
    return CommandReply(
        jid=jid,
        ok=False,
        result=result,
        error_type=str(error.get("type", "")),
        error_message=str(error.get("message", "")),
    )


def error_reply(jid: str, error_type: str, message: str) -> CommandReply:
    """A failed reply."""
    return CommandReply(jid=jid, ok=False, error_type=error_type, error_message=message)
