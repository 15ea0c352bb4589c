"""The master's bus hub: the event stream, an audit of everything on the bus, and its commands.

Every event kind is decoded here (a rejected message is counted and logged with its reason),
so ``hactl stats`` can tell an operator that something on the bus speaks garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hactl import __version__
from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.bus.jetstream import audit_usage, ensure_audit_stream
from hactl.errors import BusError
from hactl.log import get_logger
from hactl.master.jobquota import QuotaKeeper
from hactl.master.notify import Notifier
from hactl.master.reactor.runtime import ReactorRuntime
from hactl.metrics import COUNTER, GAUGE, SKIP, Family
from hactl.sdnotify import notify, watchdog
from hactl.wire.commands import CommandReply, CommandRequest, error_reply
from hactl.wire.envelope import Event, new_event
from hactl.wire.singleton import MOVE
from hactl.wire.tags import MASTER_ID, TagGlob, parse_tag

log = get_logger("hactl.master")
#: how often the master looks at the audit stream's usage, and the share of its byte cap at
#: which it alerts (the alert resolves below AUDIT_CLEAR)
AUDIT_CHECK_S = 30.0
AUDIT_FULL = 0.95
AUDIT_CLEAR = 0.9


@dataclass
class HubStats:
    """What the hub has seen since it started."""

    started: float = field(default_factory=time.time)
    events: Counter[str] = field(default_factory=Counter)

    def count(self, event: Event) -> None:
        """Count one accepted event by kind."""
        self.events[parse_tag(event.tag).kind] += 1


class Hub:
    """Runs on the master's bus connection until :meth:`stop` is called."""

    def __init__(
        self, bus: Bus, stream: StreamSettings, reactor: ReactorRuntime | None = None
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.reactor = reactor
        self.stats = HubStats()
        self.notifier: Notifier | None = None  # webhooks, when master.yaml lists some
        self._stopped = asyncio.Event()
        self._audit_full = False
        self.quota = QuotaKeeper(bus)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Ensure the stream, start auditing and answering commands."""
        info = await ensure_stream(self.bus, self.stream)
        await ensure_audit_stream(self.bus, self.stream.replicas)
        log.info("stream_ready", stream=self.stream.name, messages=info.state.messages)
        # With a reactor, its consumer decodes (and counts, and rejects) every minion, beacon,
        # job and event message already: no second copy of each is decoded here. Its own
        # audit trail (hactl/reactor/**) is counted by the engine.
        if self.reactor is None:
            for kind in ("minion", "beacon", "job", "event"):
                await self.bus.subscribe(TagGlob.parse(f"hactl/{kind}/**"), self._audit)
        await self.quota.start()  # a minion flooding job returns keeps only its newest
        await self.bus.serve(MASTER_ID, self._command)
        self._tasks.append(asyncio.create_task(self._watch_audit(), name="audit-usage"))
        if self.reactor is not None:
            await self.reactor.start()
        log.info("master_ready", url=self.bus.url, pid=os.getpid())
        notify("READY=1", f"STATUS=serving on {self.bus.url}")

    async def _audit(self, event: Event) -> None:
        self.stats.count(event)

    async def _watch_audit(self, every: float = AUDIT_CHECK_S) -> None:
        """Alert while the audit stream is (nearly) full -- it then refuses new records, so
        people's audited actions are refused -- and resolve the alert once it has room."""
        while True:
            try:
                await self.check_audit()
            except BusError as exc:
                log.warning("audit_usage_unknown", error=str(exc))
            await asyncio.sleep(every)

    async def check_audit(self) -> None:
        """One look at the audit stream's usage; fires or resolves the alert."""
        usage = await audit_usage(self.bus)
        if usage is None:
            return
        used, cap = usage
        full = used >= AUDIT_FULL * cap or (self._audit_full and used >= AUDIT_CLEAR * cap)
        if full == self._audit_full:
            return
        self._audit_full = full
        data: dict[str, Any] = {"component": "audit", "bytes": used, "max_bytes": cap}
        if full:
            data["reason"] = "the audit stream is full: people's audited actions are refused"
        else:
            data["resolved"] = True
        log.warning("audit_stream_full" if full else "audit_stream_has_room", **data)
        await self.bus.persist(new_event("hactl/event/alert/audit_stream_full", MASTER_ID, data))

    async def _command(self, req: CommandRequest) -> CommandReply:
        if req.cmd == "test.ping":
            return CommandReply(
                jid=req.jid, ok=True, result={"pong": True, "id": MASTER_ID, "version": __version__}
            )
        if req.cmd == "master.stats":
            return CommandReply(jid=req.jid, ok=True, result=await self.snapshot())
        if req.cmd == MOVE:
            return await self._move(req)
        return error_reply(
            req.jid,
            "UnknownCommand",
            f"the master knows test.ping, master.stats and {MOVE}, not {req.cmd}",
        )

    async def _move(self, req: CommandRequest) -> CommandReply:
        """``hactl singleton move NAME --to NODE`` (admins only: hactl.cmd.master)."""
        sing = self.reactor.singletons if self.reactor is not None else None
        name, to = req.args.get("name"), req.args.get("to")
        if sing is None or not isinstance(name, str) or not isinstance(to, str):
            why = "this master keeps no singletons" if sing is None else "name and to are strings"
            return error_reply(req.jid, "SingletonError", why)
        try:
            result = await sing.move(name, to)
        except (KeyError, ValueError) as exc:
            return error_reply(req.jid, "SingletonError", str(exc.args[0]))
        return CommandReply(jid=req.jid, ok=True, result=result)

    async def snapshot(self) -> dict[str, Any]:
        """Counters for ``hactl stats``."""
        result: dict[str, Any] = {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.stats.started, 3),
            "events": dict(self._events()),
            "events_total": sum(self._events().values()),
            **self.bus.rejects.as_dict(),
        }
        if self.reactor is not None and self.reactor.engine is not None:
            eng = self.reactor.engine
            result["reactor"] = {
                **eng.counts,
                "rules": len(eng.rules),
                "skipped": self.reactor.skipped,
                "view_rejected": dict(self.reactor.view.rejected),
                "observe": self.reactor.options.observe,
            }
            result["decisions"] = dict(eng.decisions)
            result["view"] = view_gauges(self.reactor.view.facts())
            rec = self.reactor.reconciler
            if rec is not None:
                result["reconciler"] = {**rec.counts, "leading": rec.leading}
            if self.reactor.singletons is not None:
                result["singletons"] = {
                    **self.reactor.singletons.counts,
                    "leases": self.reactor.singletons.snapshot(),
                }
        result["job_flood_purges"] = self.quota.purges
        if self.notifier is not None:
            totals: Counter[str] = Counter()
            for counts in self.notifier.stats().values():
                totals.update(counts)
            result["notify"] = dict(totals)
        try:
            messages, size = await self.bus.stream_state(self.stream.name)
            result["stream"] = {"name": self.stream.name, "messages": messages, "bytes": size}
        except BusError as exc:  # stats must answer even if JetStream hiccups
            result["stream"] = {"name": self.stream.name, "error": str(exc)}
        return result

    async def metrics_snapshot(self) -> dict[str, Any]:
        """:meth:`snapshot` plus the histograms (hactl/metrics.py; not for the wire)."""
        result = await self.snapshot()
        if self.reactor is not None and self.reactor.engine is not None:
            result["action_seconds"] = self.reactor.engine.latency.copy()
            if self.reactor.reconciler is not None:
                result["repair_seconds"] = self.reactor.reconciler.repair.copy()
        return result

    def _events(self) -> Counter[str]:
        if self.reactor is not None and self.reactor.engine is not None:
            return Counter(self.reactor.engine.kinds)
        return self.stats.events

    async def abort(self) -> None:
        """Undo a :meth:`start` that failed part way (the master then starts again on a new
        connection): its loops cancelled, its consumers unbound; errors of the undoing are
        not the point and are ignored."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.quota.stop()
        if self.reactor is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reactor.stop(), 15)

    def stop(self) -> None:
        """Ask :meth:`run_forever` to return."""
        self._stopped.set()

    async def run_forever(self) -> None:
        """Wait until stopped; then stop the reactor (running actions get a moment)."""
        dog = asyncio.create_task(watchdog(), name="watchdog")
        try:
            await self._stopped.wait()
        finally:
            dog.cancel()
        notify("STOPPING=1")
        for task in self._tasks:
            task.cancel()
        # every step runs whatever the one before did: a failed step once skipped the
        # reactor's, and the bus closed under its live consumer (view_not_saved: connection
        # closed, for deliveries handled after the close). The reactor stops before the
        # notifier: an alert its last actions raise still goes out.
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [("job quota", self.quota.stop)]
        if self.reactor is not None:
            steps.append(("reactor", self.reactor.stop))
        if self.notifier is not None:
            steps.append(("notifier", self.notifier.stop))
        for name, step in steps:
            try:
                await step()
            except Exception:
                log.exception("master_stop_step_failed", step=name)


#: what each path of :meth:`Hub.metrics_snapshot` is on the metrics endpoint (hactl/metrics.py)
METRICS: dict[str, Family] = {
    "pid": SKIP,
    "events": Family("counter", ("kind",)),
    "events_total": SKIP,  # the sum of the above (Prometheus sums it)
    "rejected": Family("counter", ("reason",)),
    "rejected_total": SKIP,
    "handler_errors": COUNTER,
    "reactor.*": COUNTER,  # fired, done, failed, suppressed, pending, events, redelivered ...
    "reactor.rules": GAUGE,
    "reactor.observe": GAUGE,
    "reactor.view_rejected": Family("counter", ("reason",)),
    "decisions": Family("counter", ("rule", "outcome")),
    "view.vip_holder": Family("gauge", ("vip", "node")),
    "view.galera_synced": Family("gauge", ("node",)),
    "view.haproxy_servers": Family("gauge", ("status",)),
    "reconciler.*": COUNTER,
    "reconciler.leading": GAUGE,
    "singletons.*": COUNTER,
    "singletons.leases": Family("record"),
    "job_flood_purges": COUNTER,
    "notify": Family("record"),
    "notify.*": COUNTER,
    "notify.queued": GAUGE,
    "action_seconds": Family("gauge", ("rule", "action")),
    "repair_seconds": Family("gauge", ("fault",)),
}


def view_gauges(facts: dict[str, Any]) -> dict[str, Any]:
    """The view's facts as numbers: VIP holders, Galera Synced per node, HAProxy server
    states counted over every HAProxy, lost minions."""
    holders = {f"{vip}/{n}": 1 for vip, nodes in facts["vips"].items() for n in nodes}
    synced = {n: int(n in facts["galera"]["synced"]) for n in facts["galera"]["members"]}
    states: Counter[str] = Counter()
    for aspects in facts["nodes"].values():
        for item in (aspects.get("haproxy") or {}).values():
            if isinstance(item, dict) and item.get("server") not in ("BACKEND", None):
                states[str(item.get("status"))] += 1
    return {
        "vip_holder": holders,
        "galera_synced": synced,
        "haproxy_servers": dict(states),
        "minions_lost": len(facts["lost"]),
        "split_brain": len(facts["split_brain"]),
    }
