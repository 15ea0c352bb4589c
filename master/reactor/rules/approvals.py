"""Asking a person (hactl/wire/approvals.py): store the question, say it is pending, wait for
the answer or the timeout, and return the record that decides.

The wait polls the record (every ``poll`` seconds, bounded by the rule's timeout); a record
that cannot be read back or decoded is a denial -- never an approval by accident. Expiry is a
compare-and-set too: a person who answers in the last instant wins over the default.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from typing import Any

from hactl.bus import KvStore
from hactl.errors import BusError, DecodeError, RejectReason
from hactl.log import get_logger
from hactl.master.reactor.rules.rule import ApprovePolicy
from hactl.wire.approvals import ASKED, Approval, decode, encode, expire, key
from hactl.wire.envelope import Event
from hactl.wire.ids import new_id

log = get_logger("hactl.reactor")
Say = Callable[[dict[str, Any]], Awaitable[None]]


class Approvals:
    """The questions one master asks (KV ``HACTL_APPROVALS``)."""

    def __init__(
        self, kv: KvStore, *, clock: Callable[[], float] = time.time, poll: float = 0.5
    ) -> None:
        self.kv = kv
        self.clock = clock
        self.poll = poll
        self.counts = {"asked": 0, "approved": 0, "denied": 0, "expired": 0}

    async def ask(
        self,
        rule: str,
        rkey: str,
        event: Event,
        policy: ApprovePolicy,
        say: Say,
        question: str,
        plan: dict[str, Any],
    ) -> Approval:
        """Ask, wait, and return the answered (or expired) record."""
        now = self.clock()
        a = Approval(
            id=new_id(),
            rule=rule,
            key=rkey[:200],
            event_id=event.id,
            event_tag=event.tag,
            question=question[:1000],
            plan=plan,
            asked_at=now,
            expires_at=now + policy.timeout,
            default=policy.default,
        )
        await self.kv.create(key(a.id), encode(a))
        self.counts["asked"] += 1
        log.warning("approval_pending", id=a.id, rule=rule, question=a.question)
        await say({"approval": asdict(a)})
        while True:
            await asyncio.sleep(self.poll)
            try:
                entry = await self.kv.get(key(a.id))
                if entry is None:
                    raise DecodeError(RejectReason.MISSING_FIELD, "approval record deleted")
                rec = decode(entry.value)
                if why := _not_the_question(a, rec):
                    raise DecodeError(RejectReason.BAD_TYPE, f"approval record: {why}")
            except DecodeError as exc:  # tampered with: never an approval by accident
                log.error("approval_unreadable", id=a.id, reason=str(exc))
                rec = expire(a, self.clock())
                rec = replace(rec, default="deny")
                self.counts["denied"] += 1
                return rec
            except BusError:
                if self.clock() < a.expires_at + 60:
                    continue  # JetStream away: keep waiting (the action holds its lock)
                return expire(a, self.clock())
            if rec.state != "pending":
                self.counts[rec.state] += 1
                return rec
            if self.clock() >= rec.expires_at:
                done = expire(rec, self.clock())
                try:
                    await self.kv.update(key(a.id), encode(done), entry.revision)
                except BusError:
                    continue  # answered at the last instant, or JetStream away: read again
                self.counts["expired"] += 1
                return done


def _not_the_question(asked: Approval, rec: Approval) -> str:
    """Why ``rec`` is not an answer to ``asked`` ('' when it is): an answer changes only the
    state, who answered, why and when -- an old approved record copied onto a new question
    (another id, another plan) is a forgery, and an answer names the person who gave it."""
    for name in ASKED:
        if getattr(rec, name) != getattr(asked, name):
            return f"{name} differs from the question asked"
    if rec.state in ("approved", "denied") and not rec.by:
        return "an answer without the person who gave it"
    return ""
