"""The singleton leases: one master grants, renews, expires and moves them (docs/singletons.md).

- **Specs** come from ``hactl apply`` (the ``singleton.running`` resources of the state tree),
  stored as ``singleton-spec.<name>`` in KV ``HACTL_SINGLETONS``; the lease record
  ``singleton.<name>`` (holder, since) is written only here, always with a compare-and-set on
  its revision, which is the **fencing token**: two masters can never both grant.
- **Only the leader acknowledges.** The leader key (master/reactor/leadership.py)
  decides which master answers renewals with ``leader: true``; a master that stops leading
  (it lost the JetStream majority) stops acknowledging, so every holder's copy stops at the
  end of the lease it holds.
- **Renewal**: the holder's renewal is acknowledged and timed on this master's monotonic clock.
  The lease is **expired** (cleared, then granted elsewhere) only ``expires_after(spec)`` after
  the last acknowledged renewal -- by then the holder's minion and its guard have stopped the
  copy (hactl/wire/singleton.py). A master that starts leading counts from then.
- **Moves** (planned: ``hactl singleton move``, maintenance, the failure threshold, a node
  removed from ``nodes``): the holder is told ``hold: false``, stops its copy and says so
  (``release``); only then is the lease cleared and granted to the next node, at once.
- **Audit**: every grant, release, expiry and revocation is a ``hactl/reactor/singleton/done``
  event (``failed`` when its KV write failed), with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hactl.bus import Bus, Inbound, KvStore
from hactl.bus.consumer import unsubscribe
from hactl.bus.inbound import untrusted_request
from hactl.errors import BusError, DecodeError, RejectReason
from hactl.log import get_logger
from hactl.master.singletons.placement import Candidate, choose, eligible, revoke_reason
from hactl.wire.decisions import Cause, decision
from hactl.wire.maint import Maintenance, covering
from hactl.wire.singleton import (
    LEASE_PREFIX,
    SPEC_PREFIX,
    SUBJECT_ROOT,
    Grant,
    LeaseRecord,
    RenewItem,
    SingletonSpec,
    decode_lease,
    decode_spec,
    encode_lease,
    encode_reply,
    expires_after,
    lease_key,
    node_of_subject,
    renew_request,
)
from hactl.wire.tags import MASTER_ID

log = get_logger("hactl.singletons")
RULE = "singleton"  # its name in the decision trail (hactl/reactor/singleton/<outcome>)
KV_TIMEOUT = 2.0
SPECS_EVERY = 2.0  # the specs are read again at most this often
SPECS_RETRY = 0.5  # after a failed read: soon, not on every renewal and pass
NO_EVENT = Cause("", "hactl/singleton")  # the leases' decisions answer time, not an event


@dataclass
class _State:
    """One singleton as this master knows it."""

    spec: SingletonSpec
    holder: str = ""
    rev: int = 0  # the lease record's revision (the fencing token while held); 0 = no record
    since: float = 0.0
    last_ack: float | None = None  # this master's clock; None: not heard since it leads
    known: float = 0.0  # when this master first read the spec (a lease may predate it)
    revoking: str = ""
    target: str = ""  # an operator's move target
    heard: dict[str, tuple[float, RenewItem]] = field(default_factory=dict)
    said: str = ""  # the last 'no eligible node' published


class SingletonManager:
    """One master's side of the singleton leases."""

    def __init__(
        self,
        bus: Bus,
        kv: KvStore,
        *,
        lead: Callable[[], Awaitable[bool]],
        maintenance: Callable[[], Sequence[Maintenance]],
        vip_holders: Callable[[], dict[str, str]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.kv = kv
        self.lead = lead  # the reconciler's leader key: only its holder acknowledges
        self.leading = False
        self.maintenance = maintenance
        self.vip_holders = vip_holders  # VRRP instance -> the node holding its VIP
        self.clock = clock
        self.states: dict[str, _State] = {}
        self._lead_since: float | None = None
        self._specs_read = -1e9
        # the specs were read since this master began to lead: until then it answers no
        # renewal (a master that led at once after a restart, decision 59, and could not yet
        # read the bucket would have told every holder "not a singleton", stopping its copy)
        self._specs_known = False
        self._lock = asyncio.Lock()
        self._sub: Any = None
        self.counts = {"renewals": 0, "grants": 0, "expired": 0, "released": 0, "refused": 0}

    async def start(self) -> None:
        """Answer renewals (core NATS: a JetStream outage does not stop them)."""
        self._sub = await self.bus.answer(f"{SUBJECT_ROOT}.*.renew", self._on_renew)

    async def run(self) -> None:
        """Passes every 0.25 s (expiry and placement are time-driven)."""
        while True:
            await asyncio.sleep(0.25)
            try:
                await self.tick()
            except Exception:  # a bug must not stop the leases for good
                log.exception("singleton_pass_crashed")

    # -- renewals ---------------------------------------------------------------------------

    async def _on_renew(self, msg: Inbound) -> bytes | None:
        # only a node's minion may publish on its renewal subject, and it asks on its own
        # inbox; anything else was delivered by the server on someone's behalf (a direct get
        # whose reply subject an operator pointed here, carrying a stored "release"): unread
        if why := untrusted_request(msg.reply, msg.headers):
            self.counts["refused"] += 1
            self.bus.rejects.reject(DecodeError(RejectReason.UNTRUSTED, why), msg.subject)
            return None
        try:
            node = node_of_subject(msg.subject)
            items = renew_request(msg.data)
        except DecodeError as exc:
            self.counts["refused"] += 1
            self.bus.rejects.reject(exc, msg.subject)
            return None  # no answer: a holder that sends garbage keeps no lease
        leader, grants = await self.renew(node, items)
        return encode_reply(leader, grants)

    async def renew(self, node: str, items: list[RenewItem]) -> tuple[bool, dict[str, Grant]]:
        """The answer to ``node``'s renewal (the node is the one its subject names, which only
        its own minion may publish on)."""
        now = self.clock()
        if not await self._leads(now):
            return False, {}
        self.counts["renewals"] += 1
        out: dict[str, Grant] = {}
        async with self._lock:
            await self._refresh_specs(now)
            if not self._specs_known:  # neither granted nor denied: its lease runs on
                return False, {}
            for item in items:
                st = self.states.get(item.name)
                if st is None or node not in st.spec.nodes:
                    out[item.name] = Grant(False, 0, f"{item.name} is not a singleton of {node}")
                    continue
                st.heard[node] = (now, item)
                out[item.name] = await self._answer(st, node, item, now)
        return True, out

    async def _answer(self, st: _State, node: str, item: RenewItem, now: float) -> Grant:
        if st.holder != node:
            why = f"held by {st.holder}" if st.holder else "not granted yet"
            return Grant(False, 0, why)
        if item.release:
            if await self._write(st, "", f"{node} released it ({st.revoking or 'stopped'})"):
                self.counts["released"] += 1
                return Grant(False, 0, "released")
            return Grant(False, 0, "release not recorded yet (KV)")
        if item.failures >= st.spec.failures and not st.revoking:
            st.revoking = f"failed {item.failures} times on {node} (threshold {st.spec.failures})"
        if st.revoking:
            return Grant(False, st.rev, f"revoked: {st.revoking}")
        st.last_ack = now
        return Grant(True, st.rev, "")

    # -- passes -----------------------------------------------------------------------------

    async def _leads(self, now: float) -> bool:
        self.leading = await self.lead()
        if not self.leading:
            if self._lead_since is not None:
                log.info("singletons_standby")
            self._lead_since = None
            return False
        if self._lead_since is None:
            self._lead_since = now
            self._specs_read = -1e9  # re-read specs and records: another master may have moved
            self._specs_known = False
            for st in self.states.values():
                st.last_ack, st.rev = None, 0
            log.info("singletons_leading")
        return True

    async def tick(self) -> None:
        """Expire, revoke and grant, from the facts as they are now."""
        now = self.clock()
        if not await self._leads(now):
            return
        async with self._lock:
            await self._refresh_specs(now)
            if not self._specs_known:
                return
            maint = list(self.maintenance())
            vips = self.vip_holders()
            for st in list(self.states.values()):
                await self._pass(st, now, maint, vips)

    def _candidates(self, st: _State, now: float, maint: list[Maintenance]) -> dict[str, Candidate]:
        out = {}
        for n in st.spec.nodes:
            when, item = st.heard.get(n, (-1e9, RenewItem(st.spec.name)))
            w = covering(maint, n, "api")
            out[n] = Candidate(
                n,
                heard=now - when <= 3 * st.spec.renew + 0.5,
                failures=item.failures,
                maintenance=(w.reason or "maintenance") if w is not None else "",
            )
        return out

    async def _pass(
        self, st: _State, now: float, maint: list[Maintenance], vips: dict[str, str]
    ) -> None:
        cands = self._candidates(st, now, maint)
        if st.holder:
            # never before a full lease from when this master could first know of it
            started = (
                st.last_ack if st.last_ack is not None else max(self._lead_since or now, st.known)
            )
            if now - started > expires_after(st.spec):
                silent = (
                    "not renewed"
                    if st.last_ack is not None
                    else "not heard since this master leads"
                )
                # straight to the next node in one compare-and-set (while JetStream is
                # electing after a node loss every write is slow: one, not two)
                others = {n: c for n, c in cands.items() if n != st.holder}
                node, why = choose(
                    st.spec, others, vip_holder=vips.get(st.spec.with_vip, ""), target=st.target
                )
                expired = f"{st.holder}'s lease expired ({silent})"
                if await self._write(st, node, f"{expired}; {why}" if node else expired):
                    self.counts["expired"] += 1
                    if node:
                        self.counts["grants"] += 1
                        st.last_ack, st.said = now, ""
                        if st.target == node:
                            st.target = ""
                return
            holder = cands.get(st.holder, Candidate(st.holder, True))
            target_ok = (
                bool(st.target) and st.target in cands and not eligible(st.spec, cands[st.target])
            )
            why = revoke_reason(st.spec, holder, target=st.target, target_ok=target_ok)
            if why and not st.revoking:
                await self._trail("done", st, "revoke", why)
            st.revoking = (
                why if why else ("" if not st.revoking.startswith("failed") else st.revoking)
            )
            return
        node, why = choose(
            st.spec, cands, vip_holder=vips.get(st.spec.with_vip, ""), target=st.target
        )
        if not node:
            if why != st.said:
                st.said = why
                await self._trail("suppressed", st, "grant", why)
            return
        if await self._write(st, node, why):
            self.counts["grants"] += 1
            st.last_ack, st.said = now, ""
            if st.target == node:
                st.target = ""

    # -- KV ---------------------------------------------------------------------------------

    async def _refresh_specs(self, now: float) -> None:
        if now - self._specs_read < SPECS_EVERY:
            return
        try:
            keys = await self.kv.keys(timeout=KV_TIMEOUT)
        except BusError as exc:
            log.warning("singleton_specs_unreadable", error=exc.detail[:200])
            self._specs_read = now - SPECS_EVERY + SPECS_RETRY
            return
        self._specs_read = now
        names = {k.split(".", 1)[1] for k in keys if k.startswith(SPEC_PREFIX + ".")}
        for gone in set(self.states) - names:
            del self.states[gone]  # removed from the state tree (apply deletes its spec)
        complete = True
        for key in keys:
            if not key.startswith(SPEC_PREFIX + "."):
                continue
            try:
                entry = await self.kv.get(key, timeout=KV_TIMEOUT)
                spec = decode_spec(entry.value if entry is not None else b"")
            except DecodeError as exc:
                log.error("singleton_spec_refused", key=key, reason=str(exc))
                continue
            except BusError:
                complete = False  # read again soon; until one whole read, no answers
                continue
            st = self.states.get(spec.name)
            if st is None:
                st = self.states[spec.name] = _State(spec, known=now)
            st.spec = spec
            if st.rev == 0:
                await self._read_record(st)
        if complete:
            self._specs_known = True
        else:
            self._specs_read = now - SPECS_EVERY + SPECS_RETRY

    async def _read_record(self, st: _State) -> None:
        try:
            entry = await self.kv.get(lease_key(st.spec.name), timeout=KV_TIMEOUT)
        except BusError:
            return
        if entry is None:  # absent or deleted
            st.holder, st.rev = "", 0
            return
        try:
            rec = decode_lease(entry.value)
        except DecodeError as exc:
            log.error("singleton_record_refused", name=st.spec.name, reason=str(exc))
            rec = LeaseRecord(st.spec.name)  # a record nobody can read holds nothing: overwrite
        st.holder, st.rev, st.since = rec.holder, entry.revision, rec.since

    async def _write(self, st: _State, holder: str, why: str) -> bool:
        """Set the holder with a compare-and-set on the record's revision; the trail says
        what happened either way."""
        rec = LeaseRecord(st.spec.name, holder, time.time(), MASTER_ID)
        key, prev = lease_key(st.spec.name), st.holder
        try:
            if st.rev:
                rev = await self.kv.update(key, encode_lease(rec), st.rev, timeout=KV_TIMEOUT)
            else:
                rev = await self.kv.create(key, encode_lease(rec), timeout=KV_TIMEOUT)
        except BusError as exc:
            what = "grant" if holder else "clear"
            await self._trail("failed", st, what, f"{why}: {exc.detail}"[:200])
            await self._read_record(st)  # another master wrote it, or JetStream is away
            return False
        st.holder, st.rev, st.since, st.revoking = holder, int(rev), rec.since, ""
        what = "grant" if holder else "clear"
        await self._trail("done", st, what, why, prev=prev)
        return True

    async def _trail(self, outcome: str, st: _State, kind: str, why: str, prev: str = "") -> None:
        body = {
            "key": st.spec.name,
            "kind": kind,
            "holder": st.holder,
            "from": prev or st.holder,
            "token": st.rev,
            "fact": why,
        }
        log.info(f"singleton_{kind}", name=st.spec.name, holder=st.holder, outcome=outcome, why=why)
        with contextlib.suppress(Exception):  # the trail must not stop the leases
            await self.bus.publish(decision(RULE, outcome, NO_EVENT, body))

    # -- operator ---------------------------------------------------------------------------

    async def move(self, name: str, to: str) -> dict[str, Any]:
        """``hactl singleton move``: revoke from the holder, grant to ``to`` once released."""
        st = self.states.get(name)
        if st is None:
            raise KeyError(f"no singleton {name!r} (is it in the applied state tree?)")
        if to not in st.spec.nodes:
            raise ValueError(f"{to} is not among {name}'s nodes ({', '.join(st.spec.nodes)})")
        cands = self._candidates(st, self.clock(), list(self.maintenance()))
        if why := eligible(st.spec, cands[to]):
            raise ValueError(f"cannot move {name} to {to}: {why}")
        st.target = to
        return {"name": name, "holder": st.holder, "to": to, "leading": self.leading}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Each singleton's holder, token, since and state (metrics, status)."""
        return {
            n: {
                "holder": st.holder,
                "token": st.rev,
                "since": st.since,
                "revoking": st.revoking,
                "target": st.target,
            }
            for n, st in sorted(self.states.items())
        }

    async def close(self) -> None:
        """Stop answering."""
        await unsubscribe(self._sub)


__all__ = ["LEASE_PREFIX", "SingletonManager"]
