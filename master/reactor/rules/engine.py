"""The reactor engine: match events to rules, damp, lock, run actions, report every decision.

Transport-free: events come in through :meth:`Engine.handle`, and everything goes out through
:class:`Effects` -- the NATS runtime (``master/reactor/runtime.py``) and the in-memory bus of
the tests drive the same code.

For each event: the cluster view is updated; every rule whose ``on`` matches (cached per tag)
has its ``when`` evaluated over ``event`` and ``cluster``; a true condition goes through the
damping of the rule's ``key`` (debounce, cooldown, max_per) and then fires: ``fired`` is
published, the actions run in a task (never on the event path; one run at a time per
``lock``, which is also a cluster-wide lease), and ``done`` or ``failed`` follows with every
result. Damping and locks publish ``suppressed`` with the reason; a false condition publishes
nothing. All four carry the triggering event id and a Nats-Msg-Id derived from it, so a
redelivered event cannot store a second copy.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hactl.log import get_logger
from hactl.master.reactor.rules.actions import (
    REGISTRY,
    Action,
    ActionContext,
    ActionFailed,
    Effects,
    Settings,
)
from hactl.master.reactor.rules.approvals import Approvals
from hactl.master.reactor.rules.interest import Interest
from hactl.master.reactor.rules.rule import ExpressionError, Rule, environment
from hactl.master.reactor.rules.templating import Templates
from hactl.master.reactor.rules.vocabulary import LazyFacts, event_view
from hactl.master.reactor.view.cluster import ClusterView
from hactl.metrics import Hist
from hactl.wire.approvals import Approval
from hactl.wire.decisions import Cause, decision
from hactl.wire.envelope import Event
from hactl.wire.maint import ALL, BEACON_COMPONENT, Maintenance, as_dict, covering
from hactl.wire.tags import parse_tag

log = get_logger("hactl.reactor")
#: stores a changed (node, aspect) of the view; the future is done once it is stored
Persist = Callable[[str, str], asyncio.Future[None]]
Asker = Callable[[str, dict[str, Any]], Awaitable[Approval]]
DEBOUNCE_MAX_WAIT = 3  # a debounce fires at the latest this many debounces after its first event


MAX_KEYS = 10_000  # per-(rule, key) damping states and per-key run locks kept in memory


@dataclass
class _KeyState:
    last_fired: float | None = None
    fires: deque[float] = field(default_factory=deque)
    pending: Event | None = None
    timer: asyncio.Task[None] | None = None


class Engine:
    """One master's reactor."""

    def __init__(
        self,
        rules: Iterable[Rule],
        effects: Effects,
        view: ClusterView | None = None,
        *,
        observe: bool = False,
        settings: Settings | None = None,
        actions: dict[str, Action] | None = None,
        persist: Persist | None = None,
        concurrency: int = 256,
        lock_wait: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.effects = effects
        self.view = view or ClusterView()
        self.observe = observe
        self.settings = settings or Settings()
        self.actions = actions or REGISTRY
        self.persist = persist
        self.clock = clock
        self.lock_wait = lock_wait
        self.env = environment()
        self._gate = asyncio.Semaphore(concurrency)
        self._locks: dict[str, asyncio.Lock] = {}
        self._state: dict[tuple[str, str], _KeyState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.tpl = Templates(self.env)
        self._facts: dict[str, Any] | None = None
        self._globals = dict(self.env.globals)
        self.counts = {
            "events": 0,
            "fired": 0,
            "suppressed": 0,
            "done": 0,
            "failed": 0,
            "pending": 0,
        }
        #: where questions to a person go (master/reactor/rules/approvals.py); None: nobody to ask
        self.approvals: Approvals | None = None
        self.decisions: dict[str, int] = {}  # "<rule>/<outcome>" -> count (metrics)
        self.latency = Hist()  # seconds per successful action, by "<rule>/<action>"
        self.kinds: dict[str, int] = {}  # events handled by kind (hactl stats)
        #: maintenance windows (KV HACTL_MAINT, kept current by the runtime): rules leave
        #: what they cover alone and say so (suppressed, reason maintenance)
        self.maintenance: list[Maintenance] = []
        self.set_rules(rules)

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Swap the rule set (hot reload): takes effect for the next event, none is missed."""
        self.rules = tuple(rules)
        self.interest = Interest(self.rules)  # the one tag -> rules cache (the consumer's too)

    def _maintenance(self, event: Event) -> Maintenance | None:
        """The active maintenance window covering what ``event`` is about, if any: the node
        and component of a beacon or minion event; only a cluster-wide window for others."""
        if not self.maintenance:
            return None
        tag = parse_tag(event.tag)
        if tag.node:
            component = BEACON_COMPONENT.get(tag.what, ALL) if tag.kind == "beacon" else ALL
            return covering(self.maintenance, tag.node, component)
        return covering(self.maintenance, "", ALL)

    def facts(self) -> dict[str, Any]:
        """The ``cluster`` of the templates (cached until the view changes)."""
        if self._facts is None:
            self._facts = self.view.facts()
        return self._facts

    def invalidate(self) -> None:
        """The view changed from outside (another master, via the KV)."""
        self._facts = None

    async def handle(self, event: Event, stored: float | None = None) -> list[asyncio.Future[None]]:
        """Process one event; returns what its acknowledgement waits for: the view's writes
        of what it changed and the action tasks it started. ``stored`` is when the stream
        stored it (server time): liveness is timed by it."""
        self.counts["events"] += 1
        kind = parse_tag(event.tag).kind
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        older = self.view.older(event, stored)  # not folded in; rules check their facts
        changed = self.view.update(event, stored)
        writes: list[asyncio.Future[None]] = []
        if changed:
            self._facts = None
            if self.persist is not None:  # stored off the event path (view/writer.py)
                writes = [self.persist(node, aspect) for node, aspect in changed]
        rules = self.interest.rules_for(event.tag)
        if not rules:
            return writes
        try:
            ctx = self._context(event)
        except Exception as exc:  # a fact that cannot be computed must not stop the reactor
            log.exception("reactor_facts_failed", tag=event.tag, id=event.id)
            self.counts["rule_errors"] = self.counts.get("rule_errors", 0) + 1
            for rule in rules:
                await self._audit(rule, "failed", event, {"error": f"facts: {exc!r}"[:500]})
            return writes
        started: list[asyncio.Future[None]] = writes
        for rule in rules:
            source = rule.when
            try:
                if not self.tpl.true(rule, ctx):
                    continue
                source = rule.key
                key = rule.key_fn(ctx) if rule.key_fn is not None else event.tag
            except Exception as exc:  # this rule and this event only (Trust II)
                self.counts["rule_errors"] = self.counts.get("rule_errors", 0) + 1
                err = ExpressionError(rule.name, source, exc)
                what = "when" if source == rule.when else "key"
                await self._audit(rule, "failed", event, {"error": f"{what}: {err}"[:500]})
                continue
            if (window := self._maintenance(event)) is not None:
                why = {"reason": "maintenance", "key": str(key)[:200], "window": as_dict(window)}
                await self._audit(rule, "suppressed", event, why)
                continue
            if older and (stale := self.view.stale(event, rule.trigger_fields)):
                await self._stale(rule, event, f"an older report: {stale}")
                continue
            task = await self._damp(rule, str(key)[:200], event, ctx)
            if task is not None:
                started.append(task)
        return started

    async def _stale(self, rule: Rule, event: Event, why: str) -> None:
        """The fact behind the rule's action no longer holds: dropped, and said."""
        self.counts["stale"] = self.counts.get("stale", 0) + 1
        await self._audit(rule, "suppressed", event, {"reason": "stale", "detail": why})

    def _context(self, event: Event) -> dict[str, Any]:
        return {**self._globals, "event": event_view(event), "cluster": LazyFacts(self.facts)}

    def _prune(self) -> None:
        """Per-key state is bounded: past MAX_KEYS, keys with nothing pending and no recent
        firing are forgotten (a rule keyed by an attacker-chosen value cannot grow it)."""
        now = self.clock()
        horizon = max([0.0, *(max(r.cooldown, r.max_window) for r in self.rules)])
        for k, st in list(self._state.items()):
            idle = st.pending is None and (st.timer is None or st.timer.done())
            if idle and (st.last_fired is None or now - st.last_fired > horizon):
                del self._state[k]
        for name, lock in list(self._locks.items()):
            if not lock.locked():
                del self._locks[name]

    async def _damp(
        self, rule: Rule, key: str, event: Event, ctx: dict[str, Any]
    ) -> asyncio.Task[None] | None:
        if len(self._state) >= MAX_KEYS or len(self._locks) >= MAX_KEYS:
            self._prune()
        st = self._state.setdefault((rule.name, key), _KeyState())
        if rule.debounce > 0:
            if st.pending is not None and st.pending.id == event.id and st.timer is not None:
                # the same event again (a redelivery while its debounce runs): it is already
                # waiting; treating it as news would restart the quiet period every ack wait
                return st.timer
            if st.pending is not None:
                why = {"reason": "debounced", "superseded_by": event.id, "key": key}
                await self._audit(rule, "suppressed", st.pending, why)
            st.pending = event
            if st.timer is None or st.timer.done():
                st.timer = asyncio.create_task(self._after_quiet(rule, key, st))
                self._tasks.add(st.timer)
                st.timer.add_done_callback(self._tasks.discard)
            return st.timer
        return await self._gatekeep(rule, key, event, st, ctx)

    async def _after_quiet(self, rule: Rule, key: str, st: _KeyState) -> None:
        # quiet for ``debounce``, or at most DEBOUNCE_MAX_WAIT x debounce after the first
        # event: matching reports that keep coming (three nodes resyncing every few seconds
        # while all of Galera is down) must delay a decision, never starve it (CI, 2026-11-30:
        # galera-cluster-down "debounced" for three minutes)
        start = self.clock()
        while True:
            seen = st.pending
            await asyncio.sleep(rule.debounce)
            if st.pending is seen or self.clock() - start >= DEBOUNCE_MAX_WAIT * rule.debounce:
                seen = st.pending
                break
        st.pending = None
        if seen is None:
            return
        # the quiet period is over: fire only if the condition still holds on today's view
        ctx: dict[str, Any] = {}
        try:
            ctx = self._context(seen)
            still = self.tpl.true(rule, ctx)
        except Exception:  # this rule and this event only
            still = False
        if not still:
            await self._audit(rule, "suppressed", seen, {"reason": "cleared", "key": key})
            return
        task = await self._gatekeep(rule, key, seen, st, ctx)
        if task is not None:
            await task

    async def _gatekeep(
        self, rule: Rule, key: str, event: Event, st: _KeyState, ctx: dict[str, Any]
    ) -> asyncio.Task[None] | None:
        if (window := self._maintenance(event)) is not None:  # set during a debounce, too
            why = {"reason": "maintenance", "key": key, "window": as_dict(window)}
            await self._audit(rule, "suppressed", event, why)
            return None
        now = self.clock()
        if rule.cooldown > 0 and st.last_fired is not None and now - st.last_fired < rule.cooldown:
            await self._audit(
                rule,
                "suppressed",
                event,
                {
                    "reason": "cooldown",
                    "key": key,
                    "wait": round(rule.cooldown - (now - st.last_fired), 3),
                },
            )
            return None
        if rule.max_count:
            while st.fires and now - st.fires[0] >= rule.max_window:
                st.fires.popleft()
            if len(st.fires) >= rule.max_count:
                limit = f"{rule.max_count} per {rule.max_window:g}s"
                why = {"reason": "max_per", "key": key, "limit": limit}
                await self._audit(rule, "suppressed", event, why)
                return None
            st.fires.append(now)
        st.last_fired = now
        try:
            lock = str(self.tpl.render(rule.lock, ctx)) if rule.lock else ""
            calls = [
                (c.action, self.actions[c.action].checked(self.tpl.args(dict(c.args), ctx)))
                for c in rule.do
            ]  # rendered values checked against the action's schema
        except Exception as exc:  # a bad argument template: this rule and this event only
            self.counts["rule_errors"] = self.counts.get("rule_errors", 0) + 1
            await self._audit(rule, "failed", event, {"error": f"arguments: {exc!r}"[:500]})
            return None
        acts = [{"action": a, "args": args} for a, args in calls]
        fired = {"key": key, "lock": lock, "observe": self.observe, "actions": acts}
        await self._audit(rule, "fired", event, fired)
        if not lock and all(self.actions[a].inline for a, _ in calls):
            await self._actions(rule, event, calls)  # publishes only: no task, no wait
            return None
        await self._gate.acquire()
        task = asyncio.create_task(self._run(rule, event, calls, lock, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._gate.release())
        return task

    async def _run(
        self, rule: Rule, event: Event, calls: list[tuple[str, Any]], lock: str, key: str = ""
    ) -> None:
        try:
            if lock:
                await self._run_locked(rule, event, calls, lock)
                return
            # runs for one key (a node: its out and its back) keep their order in this master
            async with self._locks.setdefault(f"key:{key}", asyncio.Lock()):
                await self._actions(rule, event, calls)
        except Exception as exc:  # never a silent task death: the decision must be reported
            log.exception("reactor_run_crashed", rule=rule.name, event=event.id)
            await self._audit(rule, "failed", event, {"error": f"{type(exc).__name__}: {exc}"})

    async def _run_locked(
        self, rule: Rule, event: Event, calls: list[tuple[str, Any]], lock: str
    ) -> None:
        local = self._locks.setdefault(lock, asyncio.Lock())
        async with local:
            if not self.observe and not await self._take(f"lock.{lock}"):
                why = {
                    "reason": "lock",
                    "lock": lock,
                    "detail": f"held by another master for {self.lock_wait:g}s",
                }
                await self._audit(rule, "suppressed", event, why)
                return
            try:
                await self._actions(rule, event, calls)
            finally:
                if not self.observe:
                    await self.effects.release(f"lock.{lock}")

    async def _take(self, lease: str) -> bool:
        """The cluster-wide lease, waiting (bounded) while another master holds it: runs for
        one key stay in order across masters instead of being dropped."""
        deadline = self.clock() + self.lock_wait
        while not await self.effects.lease(lease):
            if self.clock() >= deadline:
                return False
            await asyncio.sleep(0.01)  # hand-offs between masters are short: poll, no backoff
        return True

    async def _actions(self, rule: Rule, event: Event, calls: list[tuple[str, Any]]) -> None:
        if why := self.view.stale(event, rule.trigger_fields):  # changed while it waited
            await self._stale(rule, event, why)
            return
        results: list[dict[str, Any]] = []
        for i, (name, args) in enumerate(calls):
            ctx = ActionContext(
                self.effects,
                self.view,
                event,
                rule.name,
                i,
                self.observe,
                self.settings,
                tuple(w for w in self.maintenance if w.active()),
                self._asker(rule, event),
            )
            start = time.perf_counter()
            try:
                out = await self.actions[name].run(ctx, args)
            except ActionFailed as exc:
                results.append({"action": name, "ok": False, "reason": exc.reason, **exc.result})
                await self._audit(rule, "failed", event, {"results": results, "error": exc.reason})
                return
            except Exception as exc:  # a bug in an action must not kill the reactor
                log.exception("action_crashed", rule=rule.name, action=name)
                results.append(
                    {"action": name, "ok": False, "reason": f"{type(exc).__name__}: {exc}"}
                )
                await self._audit(rule, "failed", event, {"results": results, "error": str(exc)})
                return
            took = time.perf_counter() - start
            self.latency.observe(f"{rule.name}/{name}", took)
            results.append({"action": name, "ok": True, "ms": round(took * 1000, 2), **out})
        await self._audit(rule, "done", event, {"results": results})

    def _asker(self, rule: Rule, event: Event) -> Asker | None:
        """How this rule's actions ask a person (None: the rule has no ``approve``, or this
        master has nowhere to keep questions)."""
        policy, approvals = rule.approve, self.approvals
        if policy is None or approvals is None:
            return None

        async def say(data: dict[str, Any]) -> None:
            await self._audit(rule, "pending", event, data)

        async def ask(question: str, plan: dict[str, Any]) -> Approval:
            return await approvals.ask(rule.name, rule.key, event, policy, say, question, plan)

        return ask

    async def _audit(self, rule: Rule, what: str, event: Event, data: dict[str, Any]) -> None:
        self.counts[what] += 1
        key = f"{rule.name}/{what}"
        if key in self.decisions or len(self.decisions) < 10_000:
            self.decisions[key] = self.decisions.get(key, 0) + 1
        self.kinds["reactor"] = self.kinds.get("reactor", 0) + 1
        msg_id = f"{rule.name}.{event.id}.{what}"
        if what == "suppressed":
            msg_id += f".{data.get('reason')}"
        if what == "pending":
            msg_id += f".{data['approval']['id']}"
        await self.effects.publish(decision(rule.name, what, Cause.of(event), data), msg_id=msg_id)

    async def idle(self) -> None:
        """Wait until no action or debounce timer is running (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
