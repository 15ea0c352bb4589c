"""The reactor on NATS: the shared durable consumer, the KV-backed view, leases, liveness.

- Every master binds the same durable push consumer ``hactl-reactor`` on ``HACTL_EVENTS``
  (and ``hactl-reactor-jobs`` on ``HACTL_JOBS``, alike)
  with the deliver group ``hactl-reactor``: each event goes to one master. An event is acked
  when every action it started has ended (and said in progress every half ``ack_wait`` until
  then), so the events of a master that dies are redelivered to another after ``ack_wait``,
  and a living master's are never redelivered to itself; actions are idempotent and the
  events they publish carry a Nats-Msg-Id derived from the trigger, so a redelivery stores
  nothing twice.
- The consumer takes every subject (no filter: see ``master/reactor/rules/interest.py`` for why);
  what neither the view nor a rule can use -- the reactor's own audit trail, rule follow-ups,
  job returns -- is acked unread.
- The cluster view lives in KV ``HACTL_CLUSTER`` (``node.<id>.<aspect>``): each master writes
  what it folds in and watches the bucket, so all masters, ``hactl status`` and a restarted
  master see the same view.
- Leases (KV ``HACTL_LEASES``, create-once): rule locks, one Galera bootstrap per epoch, and
  one ``hactl/minion/<id>/lost`` per silence.
- Rule files are re-read when they change, in a thread (never on the event loop); a bad edit
  keeps the old rules (and says why). Liveness and clock skew: master/reactor/view/watch.py.
- The HAProxy reconciler (master/reactor/convergence/reconciler.py) runs beside the
  rules: poked on every change of the view or of the maintenance windows, and every
  ``reconcile.interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hactl.auth.perms import (
    APPROVAL_BUCKET,
    JOBS_STREAM,
    LEASE_BUCKET,
    LOCK_BUCKET,
    MAINT_BUCKET,
    REACTOR_CONSUMER,
    REACTOR_DELIVER,
    REACTOR_JOBS_CONSUMER,
    REACTOR_JOBS_DELIVER,
    SINGLETON_BUCKET,
)
from hactl.bus import EVENTS_STREAM, Bus, kv_bucket
from hactl.bus.consumer import Delivery, SharedConsumer, bind_shared, unsubscribe
from hactl.bus.viewstore import ViewStore
from hactl.errors import BusError, DecodeError, HactlError, JetStreamBusy
from hactl.log import get_logger
from hactl.master.incarnation import Incarnation
from hactl.master.reactor.convergence.reconciler import ReconcileOptions, Reconciler
from hactl.master.reactor.effects import LOCK_TTL, NatsEffects
from hactl.master.reactor.rules.actions import REGISTRY, Settings
from hactl.master.reactor.rules.approvals import Approvals
from hactl.master.reactor.rules.engine import Engine
from hactl.master.reactor.rules.rule import Rule, load_rules
from hactl.master.reactor.view.cluster import ClusterView
from hactl.master.reactor.view.watch import Watch
from hactl.master.reactor.view.writer import ViewWriter
from hactl.master.singletons.manager import SingletonManager
from hactl.master.singletons.placement import vip_holders
from hactl.wire.beacons import RESYNC
from hactl.wire.envelope import decode
from hactl.wire.maint import Maintenance, parse_records

log = get_logger("hactl.reactor")
CONSUMER = REACTOR_CONSUMER
APPROVAL_TTL = 7 * 86_400.0  # questions and answers are kept a week (the audit stream: longer)
RESYNC_TIMEOUT = 3.0  # a node's answer to beacon.resync (its reports follow on the stream)


@dataclass(frozen=True, slots=True)
class ReactorOptions:
    """``hactl master`` options for the reactor."""

    rules_dir: Path | None = None
    observe: bool = False
    ack_wait: float = 10.0
    lost_after: float = 30.0
    lease_ttl: float = 600.0
    max_ack_pending: int = 20_000
    replicas: int = 1  # of the KV buckets (3 on a 3-node NATS cluster)
    settings: Settings = field(default_factory=Settings)
    reconcile: ReconcileOptions = field(default_factory=ReconcileOptions)
    #: this run's leader-key value and its dead predecessor's (master/incarnation.py)
    incarnation: Incarnation | None = None


class ReactorRuntime:
    """Runs one master's engine until stopped."""

    def __init__(self, bus: Bus, options: ReactorOptions) -> None:
        self.bus = bus
        self.options = options
        self.view = ClusterView()
        self.engine: Engine | None = None
        self._rules_stamp: tuple[tuple[str, float], ...] = ()
        self._tasks: list[asyncio.Task[Any]] = []
        self._sub: Any = None
        self._jobs_sub: Any = None
        self.skipped = 0  # deliveries acked unread (no rule and no view needs them)
        self._progress: set[asyncio.Task[None]] = set()  # in-progress acks of running events
        self.watch: Watch | None = None  # liveness and clock skew (master/reactor/view/watch.py)
        self.reconciler: Reconciler | None = None
        self.singletons: SingletonManager | None = None  # leases: only with a reconciler

    def _load_rules(self) -> list[Rule]:
        d = self.options.rules_dir
        return [] if d is None else load_rules(d, REGISTRY)

    def _stamp(self) -> tuple[tuple[str, float], ...]:
        d = self.options.rules_dir
        if d is None or not d.is_dir():
            return ()
        return tuple((p.name, p.stat().st_mtime) for p in sorted(d.glob("*.yaml")))

    async def start(self) -> None:
        """Buckets, view, consumer, background loops. Raises HactlError on a bad rule file."""
        rules = self._load_rules()
        self._rules_stamp = self._stamp()
        r = self.options.replicas
        self.store = await ViewStore(self.bus).open(replicas=r)
        self.writer = ViewWriter(self.store, self.view)  # master/reactor/view/writer.py
        self.maint_kv = await kv_bucket(self.bus, MAINT_BUCKET, replicas=r)
        leases = await kv_bucket(self.bus, LEASE_BUCKET, ttl_s=self.options.lease_ttl, replicas=r)
        locks = await kv_bucket(self.bus, LOCK_BUCKET, ttl_s=LOCK_TTL, replicas=r)
        self.effects = NatsEffects(self.bus, leases, locks)
        self.engine = Engine(
            rules,
            self.effects,
            self.view,
            observe=self.options.observe,
            settings=self.options.settings,
            persist=self._persist,
        )
        self.engine.approvals = Approvals(
            await kv_bucket(self.bus, APPROVAL_BUCKET, history=5, ttl_s=APPROVAL_TTL, replicas=r)
        )
        await self._load_view()
        self.watch = Watch(self.bus, self.view, self.effects, self.options.lost_after)
        if self.options.reconcile.interval > 0:
            self.reconciler = Reconciler(
                self.effects,
                self.view,
                locks,
                maintenance=lambda: self.engine.maintenance if self.engine else [],
                trust=self._trust,
                options=self.options.reconcile,
                observe=self.options.observe,
                incarnation=self.options.incarnation,
            )
            self._tasks.append(asyncio.create_task(self.reconciler.run(), name="reconciler"))
            self.singletons = SingletonManager(
                self.bus,
                await kv_bucket(self.bus, SINGLETON_BUCKET, history=5, replicas=r),
                lead=self.reconciler.lead,
                maintenance=lambda: self.engine.maintenance if self.engine else [],
                vip_holders=lambda: vip_holders(self.view.nodes),
            )
            await self.singletons.start()
            self._tasks.append(asyncio.create_task(self.singletons.run(), name="singletons"))
        self._tasks += [
            asyncio.create_task(self._watch_view(), name="view-watch"),
            asyncio.create_task(self._watch_maintenance(), name="maint-watch"),
            asyncio.create_task(self.watch.run(), name="liveness"),
            asyncio.create_task(self._reload_loop(), name="rules-reload"),
            asyncio.create_task(self.writer.run(), name="view-writer"),
        ]
        await self.bus.subscribe("hactl/minion/*/heartbeat", self.watch.heard_live)
        await self._subscribe()
        if self.view.nodes:  # what it read back from KV: have every node report it again now
            self._tasks.append(asyncio.create_task(self._ask_resync(), name="beacon-resync"))
        log.info(
            "reactor_started",
            rules=len(rules),
            observe=self.options.observe,
            nodes=len(self.view.nodes),
        )

    async def _subscribe(self) -> None:
        """Bind the shared consumers: the event stream's and the job stream's (rules may
        watch job returns; they are kept apart so a flood of them evicts no event)."""
        self._sub = await self._bind(EVENTS_STREAM, CONSUMER, REACTOR_DELIVER)
        self._jobs_sub = await self._bind(JOBS_STREAM, REACTOR_JOBS_CONSUMER, REACTOR_JOBS_DELIVER)

    async def _bind(self, stream: str, durable: str, deliver: str) -> Any:
        spec = SharedConsumer(
            stream, durable, deliver, self.options.ack_wait, self.options.max_ack_pending
        )
        return await bind_shared(self.bus, spec, self._on_msg)

    async def _on_msg(self, msg: Delivery) -> None:
        if self.watch is not None:
            self.watch.feed.delivered(time.monotonic())
        assert self.engine is not None
        if not self.engine.interest.wants(msg.subject):  # nobody can use it: ack unread
            self.skipped += 1
            await msg.ack()
            return
        try:
            event = decode(msg.data, msg.subject)
        except DecodeError as exc:
            self.bus.rejects.reject(exc, msg.subject)
            await msg.term()
            return
        if msg.delivered > 1:
            self.engine.counts["redelivered"] = self.engine.counts.get("redelivered", 0) + 1
        try:  # what the ack waits for: the view's writes and the actions it started
            tasks = await self.engine.handle(event, msg.stored)
            if event.tag.startswith("hactl/minion/") and event.tag.endswith(
                ("/start", "/heartbeat")
            ):
                assert self.watch is not None
                await self.watch.skew(event)
        except Exception:  # a bug must not stop the consumer: redelivered a few times, then
            # dropped (terminated) so one poison event cannot loop for ever
            log.exception("reactor_handle_crashed", tag=event.tag, id=event.id)
            self.engine.counts["crashed"] = self.engine.counts.get("crashed", 0) + 1
            await (msg.term() if msg.delivered >= 3 else msg.nak(delay=1.0))
            return
        if not tasks:
            await msg.ack()
            return
        done = asyncio.gather(*tasks, return_exceptions=True)
        done.add_done_callback(lambda _: asyncio.ensure_future(msg.ack()))
        # while they run (a debounce, a lock wait, a long recovery), tell the server the
        # event is being worked on: redelivered to this master it restarted debounces (a
        # rejoin fired after 15 s instead of 5); a master that dies stops saying so, and the
        # event goes to another one ``ack_wait`` later
        keep = asyncio.ensure_future(_in_progress(msg, done, self.options.ack_wait / 2))
        self._progress.add(keep)
        keep.add_done_callback(self._progress.discard)

    async def _ask_resync(self) -> None:
        """``beacon.resync`` to every node of the restored view, at once: the view read back
        from KV may be older than the nodes (a report the last master folded in but could
        not store), and their next report with no change may be ``resync_interval`` away.
        A node that does not answer (down, cut off, an older minion) is named, nothing more:
        its view stays restored and its reports come when they come."""
        nodes = sorted(self.view.nodes)

        async def ask(node: str) -> str:
            try:
                reply = await self.effects.request(node, RESYNC, {}, RESYNC_TIMEOUT)
            except HactlError as exc:
                return str(exc)[:200]
            return "" if reply.ok else reply.error_message[:200]

        errors = await asyncio.gather(*(ask(n) for n in nodes))
        failed = {n: e for n, e in zip(nodes, errors, strict=True) if e}
        log.info("beacon_resync_asked", nodes=len(nodes), failed=failed)

    def _trust(self) -> str:
        """Why this master may not take anything out now ('' when it may): the liveness
        verdict's own test -- its consumer silent, a backlog arriving, every minion silent."""
        if self.watch is None:
            return "starting"
        silent = self.view.silent(time.time(), self.options.lost_after / 2)
        return self.watch.feed.blind(
            time.monotonic(), self.options.lost_after, silent, self.view.watched()
        )

    def _poke(self) -> None:
        if self.reconciler is not None:
            self.reconciler.poke()

    def _persist(self, node: str, aspect: str) -> asyncio.Future[None]:
        """The engine folded a change in: the writer stores it off the event path, and the
        event's acknowledgement waits for the returned future (``_on_msg``)."""
        self._poke()
        return self.writer.put(node, aspect)

    def _bad_value(self, key: str, reason: str) -> None:
        log.warning("view_value_ignored", key=key, reason=reason)

    async def _load_view(self, wait: float = 60.0) -> None:
        """The stored view, retried while JetStream is busy (a fresh cluster electing)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                entries = await self.store.load(self._bad_value)
                break
            except BusError as exc:
                if "no KV bucket" in exc.detail:
                    return
                if time.monotonic() >= deadline:  # the master starts again (daemon.py)
                    raise JetStreamBusy(
                        exc.url, f"reactor: loading the cluster view: {exc.detail}"
                    ) from None
                log.info("jetstream_busy_retrying", what="loading the view", error=exc.detail)
                await asyncio.sleep(0.5)
        for node, aspect, value, at in entries:
            if self._from_kv(node, aspect, value, at):
                self.view.restored.add((node, aspect))

    def _from_kv(self, node: str, aspect: str, value: Any, at: float | None) -> bool:
        """A stored value into the view, unless the view holds a newer one (another master's
        write that lags ours); one it refuses is reported, never fatal."""
        known = self.view.as_of.get((node, aspect))
        if at is not None and known is not None and at < known:
            return False
        if not self.view.set(node, aspect, value):
            self._bad_value(f"{node}.{aspect}", self.view.last_rejection)
            return False
        if at is not None:
            self.view.as_of[(node, aspect)] = at
        return True

    async def _watch_view(self) -> None:
        async for node, aspect, value, at in self.store.watch(self._bad_value):
            if not self._from_kv(node, aspect, value, at):
                continue
            self.view.restored.discard((node, aspect))  # another master's fresh report
            if self.engine is not None:
                self.engine.invalidate()
            self._poke()

    async def _watch_maintenance(self) -> None:
        """The windows from the bucket's watch itself (current values first, then every
        change): re-reading the bucket after a change could hit a replica a moment behind."""
        while True:  # a watch JetStream could not start (busy electing) is started again
            try:
                await self._follow_maintenance()
            except BusError as exc:
                log.warning("maintenance_watch_retrying", error=exc.detail)
            await asyncio.sleep(1.0)

    async def _follow_maintenance(self) -> None:
        windows: dict[str, Maintenance] = {}
        async for entry in self.maint_kv.watch():
            if entry.deleted:
                windows.pop(entry.key, None)
            else:
                records, problems = parse_records({entry.key: entry.value})
                for problem in problems:
                    log.warning("maintenance_value_ignored", reason=problem)
                if records:
                    windows[entry.key] = records[0]
            if self.engine is not None:
                self.engine.maintenance = list(windows.values())
            self._poke()
            log.info("maintenance_windows", windows=sorted(windows))

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            # read and parsed in a thread: a large or slow rule file never stalls the events
            try:
                stamp = await asyncio.to_thread(self._stamp)
            except OSError as exc:
                log.error("rules_not_reloaded", error=str(exc), keeping="the previous rules")
                continue
            if stamp == self._rules_stamp:
                continue
            self._rules_stamp = stamp
            try:
                rules = await asyncio.to_thread(self._load_rules)
            except HactlError as exc:
                log.error("rules_not_reloaded", error=str(exc), keeping="the previous rules")
                continue
            assert self.engine is not None
            self.engine.set_rules(rules)
            log.info("rules_reloaded", rules=len(rules))

    async def stop(self) -> None:
        """Stop consuming; let running actions finish (bounded), cancel the loops."""
        for sub in (self._sub, self._jobs_sub):
            await unsubscribe(sub)
        if self.engine is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.engine.idle(), 10)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if getattr(self, "writer", None) is not None and self.writer.dirty:
            await self.writer.flush(3.0)  # the next master reads what this one knew
        if self.singletons is not None:
            await self.singletons.close()
        if self.reconciler is not None:
            await self.reconciler.resign()


async def _in_progress(msg: Delivery, done: asyncio.Future[Any], every: float) -> None:
    """``+WPI`` every ``every`` seconds until ``done`` (the event's tasks) ends."""
    while not done.done():
        await asyncio.wait({done}, timeout=every)
        if not done.done():
            await msg.in_progress()
