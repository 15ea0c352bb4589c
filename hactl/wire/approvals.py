"""Approvals: a decision a machine must not take alone, waiting for a named person (pure).

A rule that says ``approve: {timeout: 10m, default: deny}`` lets its actions ask before their
dangerous step (the shipped Galera recovery asks before bootstrapping while a member is
unreachable: its data may be newer). The master stores an :class:`Approval` in KV
``HACTL_APPROVALS`` (``approval.<id>``) with everything a person needs -- the rule, the trigger,
the question and the exact plan -- publishes ``hactl/reactor/<rule>/pending``, and waits. An
admin answers with ``hactl approve ID`` or ``hactl deny ID --reason``: a compare-and-set on the
record (only a pending, unexpired record can be answered, once), audited under the person's
key first. Unanswered at ``expires_at``, the master applies ``default`` (``expired``).

Every record read back is hostile until :func:`decode` accepted it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from hactl.errors import DecodeError, HactlError, RejectReason
from hactl.schema import Field
from hactl.wire.records import NUMBER, json_record

PREFIX: Final = "approval"
STATES: Final = ("pending", "approved", "denied", "expired")
DEFAULTS: Final = ("deny", "approve")
MAX_BYTES: Final = 16_384
MAX_REASON: Final = 500
_ID = re.compile(r"[0-9A-Za-z]{10,40}\Z")
_NAME = re.compile(r"[A-Za-z0-9_.:/-]{0,200}\Z")
_TEXT = re.compile(r"[^\x00-\x1f\x7f]{0,200}\Z")
#: what a question is: the fields the master asks with, which no answer may change
ASKED: Final = (
    "id",
    "rule",
    "key",
    "event_id",
    "event_tag",
    "question",
    "plan",
    "asked_at",
    "expires_at",
    "default",
)


@dataclass(frozen=True, slots=True)
class Approval:
    """One question to a person and, once answered or expired, its answer."""

    id: str
    rule: str
    key: str
    event_id: str
    event_tag: str
    question: str
    plan: dict[str, Any]
    asked_at: float
    expires_at: float
    default: str = "deny"
    state: str = "pending"
    by: str = ""  # the public key of the person who answered ('' pending or expired)
    reason: str = ""
    answered_at: float = 0.0

    @property
    def granted(self) -> bool:
        """The action may go on: approved, or expired with default ``approve``."""
        return self.state == "approved" or (self.state == "expired" and self.default == "approve")

    def open(self, now: float) -> bool:
        """Still waiting for a person."""
        return self.state == "pending" and now < self.expires_at


def key(approval_id: str) -> str:
    """The KV key of an approval."""
    if not _ID.fullmatch(approval_id):
        raise DecodeError(RejectReason.BAD_TYPE, f"not an approval id: {approval_id[:60]!r}")
    return f"{PREFIX}.{approval_id}"


def encode(a: Approval) -> bytes:
    """JSON (``nats kv get HACTL_APPROVALS approval.<id>`` is readable)."""
    data = json.dumps(asdict(a), sort_keys=True, default=str).encode()
    if len(data) > MAX_BYTES:
        raise DecodeError(RejectReason.OVERSIZE, f"approval record of {len(data)} bytes")
    return data


_TEXTS = ("id", "rule", "key", "event_id", "event_tag", "question", "by", "reason")
_TIMES = ("asked_at", "expires_at", "answered_at")
_RECORD = (
    *(Field(name, (str,)) for name in _TEXTS),
    Field("default", (str,), choices=tuple(DEFAULTS)),
    Field("state", (str,), choices=tuple(STATES)),
    Field("plan", (dict,)),
    *(Field(name, NUMBER) for name in _TIMES),
)


def decode(data: bytes) -> Approval:
    """A record, strictly (DecodeError with the reason)."""
    raw = json_record(data, "approval record", _RECORD, MAX_BYTES, exact=True)
    if (
        not _ID.fullmatch(raw["id"])
        or not _NAME.fullmatch(raw["rule"])
        or not _TEXT.fullmatch(raw["key"])
    ):
        raise DecodeError(RejectReason.BAD_TYPE, "approval record: id, rule or key")
    if len(raw["reason"]) > MAX_REASON:
        raise DecodeError(RejectReason.BAD_TYPE, "approval record: reason")
    return Approval(**{**raw, **{f: float(raw[f]) for f in _TIMES}})


class AnswerRefused(HactlError):
    """An answer that does not apply (already answered, expired, bad reason)."""


def answer(a: Approval, approve: bool, by: str, reason: str, now: float) -> Approval:
    """The record answered by ``by`` (a public key); AnswerRefused with the reason when it
    cannot be (not pending, expired, a reason too long or with control characters)."""
    if a.state != "pending":
        raise AnswerRefused(
            f"approval {a.id} is already {a.state}" + (f" by {a.by[:12]}" if a.by else "")
        )
    if now >= a.expires_at:
        raise AnswerRefused(f"approval {a.id} expired (its default, {a.default}, applies)")
    if len(reason) > MAX_REASON or any(ord(c) < 32 for c in reason):
        raise AnswerRefused(f"reason: at most {MAX_REASON} printable characters")
    state = "approved" if approve else "denied"
    return replace(a, state=state, by=by, reason=reason, answered_at=now)


def expire(a: Approval, now: float) -> Approval:
    """The record once its time is up unanswered."""
    return replace(a, state="expired", answered_at=now, reason=f"no answer; default {a.default}")
