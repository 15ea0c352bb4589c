"""The reconciler: converge every HAProxy to the desired state
(master/reactor/convergence/desired.py), and resolve VIPs held twice
(master/reactor/convergence/split_brain.py).

Kubernetes' controllers and Pacemaker's policy engine are the model, Salt's reactor the
counter-example: the desired state of every server is recomputed from the current view on
every change and every ``interval``, compared with what each HAProxy's beacon says, and only
the differences are sent -- idempotent and order-independent, so a restarted master, a stale
event or a crossed out/back cannot leave residue.

- **One leader**: a pass runs only in the master holding the ``reconciler`` key of the lock
  bucket (TTL 15 s), renewed with a compare-and-set on its revision. A master whose JetStream
  writes are not acknowledged cannot renew, so it stops correcting within seconds; another
  master takes over when the key expires. Two masters never fight over a server.
- **Trust**: nothing is taken out while the master cannot trust what it hears (its consumer
  silent, a backlog still arriving, every minion silent at once: master/reactor/view/liveness.py).
- **Damping**: a server goes back to ``ready`` only after its facts said so for
  ``settle_back``; a correction is not repeated before the beacon had ``retry`` to show it
  (backing off on failure); more than ``max_per_minute`` corrections of one server on one
  HAProxy is flapping, and it is held for the rest of that minute.
- **Split brain**: a VIP held by two nodes for ``split_debounce`` -> every holder but the one
  ranked first yields it (master/reactor/convergence/split_brain.py, ``vrrp.yield``); the yield is
  renewed each pass for ``yield_hold``, then ended to see whether VRRP hears again (a split that
  comes back doubles the hold, up to ``yield_hold_max``); it ends at once when no other node holds
  the VIP, and by itself within ``yield_ttl`` when no master renews it.
- **Audit**: every correction is a ``hactl/reactor/reconcile/done`` (or ``failed``) event
  naming the fact that caused it; a needed correction that is held (maintenance, untrusted
  facts, flapping, ...) is a ``suppressed`` event with the reason, once per change of reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hactl.bus import KvStore
from hactl.errors import CommandError
from hactl.log import get_logger
from hactl.master.incarnation import Incarnation
from hactl.master.reactor.convergence.desired import OUT, Want, component, desired
from hactl.master.reactor.convergence.yields import SplitBrains
from hactl.master.reactor.leadership import Leadership
from hactl.master.reactor.rules.actions.base import Effects
from hactl.master.reactor.view.cluster import ClusterView
from hactl.metrics import Hist
from hactl.wire.decisions import Cause, decision
from hactl.wire.haproxy import COMMAND, HaproxyRuntime
from hactl.wire.maint import Maintenance
from hactl.wire.vrrp import MAX_SECONDS

log = get_logger("hactl.reconciler")
RULE = "reconcile"  # its name in the decision trail (hactl/reactor/reconcile/<outcome>)


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    """How the reconciler paces itself (``hactl master --reconcile-interval``; 0 = off)."""

    interval: float = 5.0
    settle_back: float = 2.0
    retry: float = 3.0
    max_per_minute: int = 6
    command_timeout: float = 5.0
    #: split brain (master/reactor/convergence/split_brain.py): how long two holders must
    #: last before one yields, the first hold, and its ceiling (the hold doubles when the
    #: split comes back)
    split_debounce: float = 2.0
    yield_hold: float = 30.0
    yield_hold_max: float = 600.0

    @property
    def yield_ttl(self) -> int:
        """Seconds each yield command asks for: three passes, so one lost renewal is harmless
        and a master that stops renewing frees the VIP within this."""
        return int(min(MAX_SECONDS, max(15.0, 3 * self.interval)))


@dataclass
class _Key:
    want: str = ""
    since: float = 0.0
    next_try: float = 0.0
    backoff: float = 0.0
    sent: deque[float] = field(default_factory=deque)
    said: str = ""  # the last held reason published


class Reconciler:
    """One master's reconciler (acts only while it leads)."""

    def __init__(
        self,
        effects: Effects,
        view: ClusterView,
        locks: KvStore,
        *,
        maintenance: Callable[[], Sequence[Maintenance]],
        trust: Callable[[], str],
        options: ReconcileOptions | None = None,
        observe: bool = False,
        clock: Callable[[], float] = time.monotonic,
        incarnation: Incarnation | None = None,
    ) -> None:
        self.effects = effects
        self.view = view
        self.locks = locks
        self.maintenance = maintenance
        self.trust = trust
        self.options = options or ReconcileOptions()
        self.observe = observe
        self.clock = clock
        self.leadership = Leadership(locks, clock, incarnation)
        self._keys: dict[str, _Key] = {}
        self.splits = SplitBrains(self)
        self._dirty = asyncio.Event()
        self.counts = {"passes": 0, "corrections": 0, "failed": 0, "held": 0}
        #: seconds from the fact's report (its stored time) to the correction done, by class
        self.repair = Hist()
        self.facts: dict[str, Any] = {}  # the view's facts as the last plan() saw them

    def poke(self) -> None:
        """The view or the maintenance windows changed: run a pass soon."""
        self._dirty.set()

    def poke_later(self, seconds: float) -> None:
        """Run a pass in ``seconds`` (a debounce ends then)."""
        asyncio.get_running_loop().call_later(seconds, self.poke)

    async def run(self) -> None:
        """Passes on every change (at most every 0.2 s) and every ``interval``."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self.options.interval)
            await asyncio.sleep(0.2)  # let a burst of changes land in one pass
            self._dirty.clear()
            try:
                if await self.lead():
                    await self.once()
            except Exception:  # a bug must not stop convergence for good
                log.exception("reconcile_pass_crashed")

    async def lead(self) -> bool:
        """Hold (or take) the leader key (master/reactor/leadership.py)."""
        return await self.leadership.lead()

    @property
    def leading(self) -> bool:
        """Whether this master led at its last check."""
        return self.leadership.leading

    async def resign(self) -> None:
        """Give the leader key back (a clean stop): another master takes over at once."""
        await self.leadership.resign()

    def plan(self) -> list[Want]:
        """The desired state of every managed server, from the view as it is now."""
        facts = self.facts = self.view.facts()
        return desired(self.view.nodes, facts["vrrp_health"], self.maintenance(), self.trust())

    async def once(self) -> list[dict[str, Any]]:
        """One pass: the corrections sent (or, observing, that would be sent)."""
        self.counts["passes"] += 1
        now = self.clock()
        todo: list[Want] = []
        for want in self.plan():
            st = self._keys.setdefault(want.key, _Key())
            if st.want != want.state:
                st.want, st.since, st.next_try, st.backoff = want.state, now, 0.0, 0.0
            if want.current == want.state:
                st.said = ""
                continue
            if want.held:
                await self._held(want, st, want.held)
                continue
            if want.state not in OUT and now - st.since < self.options.settle_back:
                continue  # back in only once its facts held (damping)
            if now < st.next_try:
                continue
            while st.sent and now - st.sent[0] >= 60.0:
                st.sent.popleft()
            if len(st.sent) >= self.options.max_per_minute:
                await self._held(want, st, f"flapping: {len(st.sent)} corrections in a minute")
                continue
            st.sent.append(now)
            todo.append(want)
        results = await self._correct_all(todo)
        for want, result in zip(todo, results, strict=True):
            st = self._keys[want.key]
            if result.get("deferred"):
                st.sent.pop()  # not sent: it does not count towards flapping
            if result["ok"]:
                st.backoff = 0.0
                st.next_try = now + self.options.retry
            else:
                st.backoff = min(30.0, max(self.options.retry, st.backoff * 2))
                st.next_try = now + st.backoff
        if len(self._keys) > 20_000:  # servers that left the view
            live = {w.key for w in self.plan()}
            self._keys = {k: v for k, v in self._keys.items() if k in live}
        return results + await self.splits.once(now)

    async def _correct_all(self, todo: list[Want]) -> list[dict[str, Any]]:
        """Every correction, in two waves: one per HAProxy first, then the rest of each
        HAProxy whose first one went through. An HAProxy that just died (its admin socket
        refuses before its beacon says so) costs one failed call, not one per server."""
        by_h: dict[str, list[int]] = {}
        for i, w in enumerate(todo):
            by_h.setdefault(w.haproxy, []).append(i)
        out: list[dict[str, Any]] = [{} for _ in todo]
        firsts = [idx[0] for idx in by_h.values()]
        done = await asyncio.gather(*(self._correct(todo[i]) for i in firsts))
        for i, r in zip(firsts, done, strict=True):
            out[i] = r
        rest = [i for idx in by_h.values() if out[idx[0]]["ok"] for i in idx[1:]]
        done = await asyncio.gather(*(self._correct(todo[i]) for i in rest))
        for i, r in zip(rest, done, strict=True):
            out[i] = r
        for idx in by_h.values():
            if not out[idx[0]]["ok"]:
                why = f"not sent: {todo[idx[0]].haproxy} failed {todo[idx[0]].key} first"
                for i in idx[1:]:
                    out[i] = {"ok": False, "deferred": True, "error": why}
                if len(idx) > 1:
                    log.info("reconcile_deferred", haproxy=todo[idx[0]].haproxy, count=len(idx) - 1)
        return out

    async def _held(self, want: Want, st: _Key, why: str) -> None:
        if st.said == why:
            return
        st.said = why
        self.counts["held"] += 1
        reason, _, detail = why.partition(": ")
        await self._audit("suppressed", want, {"reason": reason, "detail": detail})

    async def _correct(self, want: Want) -> dict[str, Any]:
        where = {"backend": want.backend, "server": want.server}
        changes = [HaproxyRuntime.from_args({"verb": "set_state", **where, "state": want.state})]
        if want.cut and want.state == "maint":
            changes.append(HaproxyRuntime.from_args({"verb": "shutdown_sessions", **where}))
        if self.observe:
            out = {"ok": True, "observe": True, "would": [c.args() for c in changes]}
            await self._audit("done", want, out)
            return out
        start = time.perf_counter()
        detail = ""
        for change in changes:
            try:
                reply = await self.effects.request(
                    want.haproxy, COMMAND, change.args(), self.options.command_timeout
                )
            except CommandError as exc:
                detail = exc.detail
                break
            if not (reply.ok and reply.result.get("result")):
                detail = reply.error_message if not reply.ok else str(reply.result)[:200]
                break
        ms = round((time.perf_counter() - start) * 1000, 2)
        out = {"ok": not detail, "ms": ms, **({"error": detail} if detail else {})}
        self.counts["corrections" if not detail else "failed"] += 1
        if not detail:
            aspect = {"galera": "galera", "rabbitmq": "rabbitmq"}.get(component(want.backend))
            reported = self.view.as_of.get((want.server, aspect or "vrrp"))
            if reported is not None:
                self.repair.observe(
                    f"{component(want.backend)}_{want.state}", max(0.0, time.time() - reported)
                )
        await self._audit("done" if not detail else "failed", want, out)
        return out

    async def _audit(self, what: str, want: Want, data: dict[str, Any]) -> None:
        where = {"haproxy": want.haproxy, "backend": want.backend, "server": want.server}
        moves = {"from": want.current, "to": want.state}
        cause = self.view.cause.get((want.server, want.source))
        await self.publish(what, want.key, {**where, **moves, "fact": want.fact, **data}, cause)

    async def publish(
        self,
        what: str,
        key: str,
        fields: dict[str, Any],
        cause: tuple[str, str, float] | None = None,
    ) -> None:
        """One decision of the reconciler in the trail (``hactl/reactor/reconcile/<what>``),
        naming the event that last changed the fact behind it (``hactl why`` follows it; ''
        when the fact came from the stored view, not an event this master folded in)."""
        why = Cause(*cause) if cause else Cause("", "hactl/reconcile")
        log.info("reconcile_" + what, key=key, to=fields.get("to"), fact=fields.get("fact"))
        with contextlib.suppress(Exception):  # the trail must not stop convergence
            await self.effects.publish(decision(RULE, what, why, {"key": key, **fields}))
