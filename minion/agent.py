"""The minion daemon: beacons -> outbox -> NATS, and commands from the master.

Beacons start at once and keep watching whether or not NATS is reachable; their events wait
in the bounded outbox. The first connection is retried in the background (each try bounded),
after which nats-py reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

from hactl import __version__
from hactl.auth.client import ClientAuth
from hactl.auth.perms import LEASE_BUCKET, MAINT_BUCKET
from hactl.bus import Bus
from hactl.errors import BusError, MinionFailed, TagError
from hactl.log import get_logger
from hactl.metrics import COUNTER, Family
from hactl.metrics import serve as serve_metrics
from hactl.minion.beacons import REGISTRY as BEACONS
from hactl.minion.beacons.base import BeaconContext
from hactl.minion.beacons.runner import BeaconRunner
from hactl.minion.beacons.vrrp import local_addresses
from hactl.minion.config import MinionConfig, beacon_vips
from hactl.minion.executors import dispatch
from hactl.minion.health_agent import HealthAgent
from hactl.minion.outbox import Outbox
from hactl.minion.process_watch import ProcessWatch
from hactl.minion.singleton import SingletonBeacon, SingletonKeeper
from hactl.minion.supervisor import Supervisor, SupervisorBeacon
from hactl.minion.vip_follow import VipFollow
from hactl.minion.vip_release import VipRelease
from hactl.sdnotify import notify, watchdog, watchdog_period
from hactl.wire.commands import CommandReply, CommandRequest
from hactl.wire.envelope import new_event
from hactl.wire.tags import job_tag, minion_tag
from hactl.wire.vrrp import down_file

log = get_logger("hactl.minion")

_VERSION_ARGV = {
    "haproxy": ["haproxy", "-v"],
    "keepalived": ["keepalived", "-v"],
    "mariadb": ["mariadbd", "--version"],
    "rabbitmq": ["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"],
}


def daemon_versions() -> dict[str, str]:
    """First line of each HA daemon's version output ('' when absent). Run once at start."""
    out: dict[str, str] = {}
    for name, argv in _VERSION_ARGV.items():
        if not shutil.which(argv[0]) and not shutil.which(argv[0], path="/usr/sbin:/sbin"):
            out[name] = ""
            continue
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
            text = (res.stdout or res.stderr).strip().splitlines()
            out[name] = text[0] if text and res.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            out[name] = ""
    return out


STOP_GRACE = 5.0  # seconds the tasks get to end after SIGTERM


class Minion:
    """One node agent."""

    def __init__(
        self, cfg: MinionConfig, url: str, auth: ClientAuth, connect_timeout: float = 3.0
    ) -> None:
        self.cfg = cfg
        self.url = url
        self.auth = auth
        self.connect_timeout = connect_timeout
        self.outbox = Outbox(cfg.buffer_limit)
        self.ctx = cfg.exec_context()
        self.runners = [
            BeaconRunner(
                BEACONS[name](BeaconContext(cfg.id, opts, held=self.ctx.planned.held)),
                cfg.id,
                self.outbox.put,
                cfg.resync_interval,
            )
            for name, opts in cfg.beacons.items()
        ]
        self.supervisor: Supervisor | None = None
        if cfg.supervision is not None:
            self.supervisor = Supervisor(self.ctx, cfg.supervision)
            self.ctx = dataclasses.replace(self.ctx, supervision=self.supervisor)
            self.runners.append(
                BeaconRunner(
                    SupervisorBeacon(self.supervisor), cfg.id, self.outbox.put, cfg.resync_interval
                )
            )
        self.keeper: SingletonKeeper | None = None
        if cfg.singletons is not None:
            self.keeper = SingletonKeeper(cfg.id, Path(cfg.singletons.dir), self.ctx)
            self.ctx = dataclasses.replace(self.ctx, singletons=self.keeper)
            self.runners.append(
                BeaconRunner(
                    SingletonBeacon(self.keeper), cfg.id, self.outbox.put, cfg.resync_interval
                )
            )
        self.health: HealthAgent | None = None
        if cfg.health_agent is not None:
            galera = next(r for r in self.runners if r.beacon.name == "galera")
            self.health = HealthAgent(cfg.health_agent, lambda: (galera.last, galera.polled_at))
        self.watches: list[ProcessWatch] = []
        if cfg.vrrp is not None:
            self.watches = [
                ProcessWatch(name, cfg.services[name], Path(cfg.vrrp.track_dir) / down_file(name))
                for name in cfg.vrrp.watch
            ]
        self.release: VipRelease | None = None
        if cfg.vrrp is not None and "vrrp" in cfg.beacons:
            vrrp, vips = cfg.vrrp, beacon_vips(cfg.beacons)
            follow = VipFollow(frozenset(vips)) if vrrp.follow_connections else None
            if vips and (vrrp.release_connections or follow):
                self.release = VipRelease(
                    vips, local_addresses, follow, release=vrrp.release_connections
                )
        if self.runners:  # beacon.resync (minion/executors/beacons.py)
            self.ctx = dataclasses.replace(self.ctx, resync=self.resync)
        self.bus: Bus | None = None
        self.versions: dict[str, str] = {}
        self.commands = 0

    def resync(self) -> list[str]:
        """Every beacon polls now and reports, change or not; their names."""
        for runner in self.runners:
            runner.kick()
        return [r.beacon.name for r in self.runners]

    async def grains(self) -> dict[str, Any]:
        """Facts about this node for heartbeats."""
        try:
            addrs = sorted(await local_addresses())
        except (OSError, TimeoutError, ValueError):
            addrs = []
        return {
            "hostname": platform.node(),
            "addresses": addrs,
            "roles": list(self.cfg.roles),
            "versions": self.versions,
            "hactl": __version__,
            "outbox": {
                "queued": len(self.outbox.queue),
                "dropped": self.outbox.dropped,
                "sent": self.outbox.sent,
            },
        }

    #: what each path of :meth:`metrics` is on the metrics endpoint (hactl/metrics.py)
    METRICS: ClassVar[dict[str, Family]] = {
        "commands": COUNTER,
        "outbox": Family("record"),
        "outbox.dropped": COUNTER,
        "outbox.sent": COUNTER,
        "beacon_polls": Family("counter", ("beacon",)),
        "beacon_errors": Family("counter", ("beacon",)),
        "watch_deaths": Family("counter", ("service",)),
        "watch_down": Family("gauge", ("service",)),
        "supervised_deaths": Family("gauge", ("service",)),  # in the failure window
        "supervised_restarts": Family("counter", ("service",)),
        "supervised_given_up": Family("gauge", ("service",)),
        "supervised_running": Family("gauge", ("service",)),
        "vip_releases": COUNTER,
        "vip_connections_ended": COUNTER,
        "vip_follows": COUNTER,
        "vip_client_connections_ended": COUNTER,
        "yield_seconds_left": Family("gauge", ("instance",)),
    }

    async def metrics(self) -> dict[str, Any]:
        """What the metrics endpoint serves (hactl/metrics.py), read on the event loop."""
        out: dict[str, Any] = {
            "connected": self.bus is not None,
            "commands": self.commands,
            "outbox": {
                "queued": len(self.outbox.queue),
                "dropped": self.outbox.dropped,
                "sent": self.outbox.sent,
            },
            "beacon_polls": {r.beacon.name: r.polls for r in self.runners},
            "beacon_errors": {r.beacon.name: r.errors for r in self.runners},
            "watch_deaths": {w.name: w.deaths for w in self.watches},
            "watch_down": {w.name: int(bool(w.down)) for w in self.watches},
        }
        if self.supervisor is not None:
            snap = self.supervisor.snapshot()
            for field in ("deaths", "restarts", "given_up", "running"):
                out[f"supervised_{field}"] = {n: int(v[field]) for n, v in snap.items()}
        if self.release is not None:
            out["vip_releases"] = self.release.releases
            out["vip_connections_ended"] = self.release.ended
            if self.release.follow is not None:
                out["vip_follows"] = self.release.follow.follows
                out["vip_client_connections_ended"] = self.release.follow.ended
        if self.ctx.vrrp is not None:
            keeper = self.ctx.vrrp
            out["yield_seconds_left"] = {i: keeper.remaining(i) for i in keeper.settings.instances}
        return out

    async def _command(self, req: CommandRequest) -> CommandReply:
        self.commands += 1
        reply = await dispatch(self.ctx, req)
        if self.supervisor is not None and req.cmd == "service.stop" and reply.ok:
            self.supervisor.forget(str(req.args.get("name")))  # stopped on purpose
        if req.cmd != "test.ping":  # every job returns an event, like Salt's (pings are noise)
            data: dict[str, Any] = {"cmd": req.cmd, "ok": reply.ok}
            if reply.ok:
                data["result"] = reply.result
            else:
                data["error"] = {"type": reply.error_type, "message": reply.error_message}
            try:
                ret = new_event(job_tag(req.jid, self.cfg.id), self.cfg.id, data)
            except TagError:
                log.warning("job_ret_not_sent", jid=req.jid, reason="jid is not a valid tag level")
            else:
                self.outbox.put(ret)
        return reply

    async def _connect_loop(self) -> None:
        while self.bus is None:
            try:
                bus = await Bus.connect(
                    self.url,
                    self.auth,
                    name=f"hactl-minion-{self.cfg.id}",
                    timeout=self.connect_timeout,
                    reconnect=True,
                    announce=True,
                )
            except BusError as exc:
                log.warning(
                    "nats_unreachable_buffering", error=str(exc), queued=len(self.outbox.queue)
                )
                await asyncio.sleep(1.0)
                continue
            self.ctx = dataclasses.replace(
                self.ctx,
                leases=functools.partial(bus.read_key, LEASE_BUCKET),
                maint=functools.partial(bus.read_key, MAINT_BUCKET),
            )
            if self.supervisor is not None:
                self.supervisor.ctx = self.ctx
            if self.keeper is not None:
                self.keeper.bus = bus
            await bus.serve(self.cfg.id, self._command)
            self.bus = bus
            self.outbox.attach(bus)
            log.info("minion_connected", url=self.url, id=self.cfg.id)
            notify(f"STATUS=connected to {bus.url}")

    async def _serve_health(self) -> None:
        """The health agent, bound as soon as the node's address exists (retried: at boot
        the address may come up after the minion)."""
        assert self.health is not None
        while True:
            try:
                await self.health.start()
                break
            except OSError as exc:
                log.error("health_agent_not_listening", error=str(exc), retry_s=5)
                await asyncio.sleep(5.0)
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            await self.health.close()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.heartbeat_interval)
            beat = new_event(minion_tag(self.cfg.id, "heartbeat"), self.cfg.id, await self.grains())
            self.outbox.put(beat)
            if self.bus is not None:
                # also at once on core NATS, with the event id as Nats-Msg-Id: the outbox keeps
                # order and waits behind an event the stream cannot store yet (a leader
                # election after a server is cut), and a master must still hear that this node
                # lives; if the stream stores this copy, the outbox's is a duplicate (one copy)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.bus.publish(beat, msg_id=beat.id), 1.0)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then send ``stop`` and flush what it can."""
        self.versions = await asyncio.to_thread(daemon_versions)
        if self.ctx.vrrp is not None:
            self.ctx.vrrp.reset()  # a yield of an earlier minion process is not inherited
        self.outbox.put(
            new_event(minion_tag(self.cfg.id, "start"), self.cfg.id, await self.grains())
        )
        tasks = [asyncio.create_task(r.run(), name=f"beacon-{r.beacon.name}") for r in self.runners]
        tasks += [
            asyncio.create_task(self.outbox.run(), name="outbox"),
            asyncio.create_task(self._connect_loop(), name="connect"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
        ]
        if self.health is not None:
            tasks.append(asyncio.create_task(self._serve_health(), name="health-agent"))
        tasks += [asyncio.create_task(w.run(), name=f"watch-{w.name}") for w in self.watches]
        if self.release is not None:
            tasks.append(asyncio.create_task(self.release.run(), name="vip-release"))
        if self.keeper is not None:
            tasks.append(asyncio.create_task(self.keeper.run(), name="singletons"))
        if self.cfg.metrics:
            serve_metrics(self.cfg.metrics, "hactl_minion", self.metrics, self.METRICS)
        log.info("minion_started", id=self.cfg.id, beacons=[r.beacon.name for r in self.runners])
        # ready: beacons, supervision and the watch run (they work while NATS is away)
        notify("READY=1", f"STATUS=watching; NATS {self.url}")
        if watchdog_period() is not None:  # a task here must run for ever (see supervise)
            tasks.append(asyncio.create_task(watchdog(), name="watchdog"))
        died: list[str] = []

        def supervise(task: asyncio.Task[None]) -> None:
            # these tasks run forever: one that ends is a bug; a half-alive minion that looks
            # healthy is worse than one that exits (its service manager restarts it)
            if task.cancelled() or stop.is_set():
                return
            exc = task.exception()
            if exc is None and task.get_name() == "connect":
                return  # the only task that is done once it has done its job
            log.critical("minion_task_died", task=task.get_name(), error=repr(exc))
            died.append(task.get_name())
            stop.set()

        for task in tasks:
            task.add_done_callback(supervise)
        try:
            await stop.wait()
        finally:
            notify("STOPPING=1")
            self.outbox.put(
                new_event(minion_tag(self.cfg.id, "stop"), self.cfg.id, {"ts": time.time()})
            )
            if self.bus is not None:
                await self.outbox.drain(2.0)
            for task in tasks:
                task.cancel()
            # bounded: a task blocked in a thread or on a dead server must not keep a stopping
            # minion alive (its service manager would SIGKILL it after TimeoutStopSec)
            _, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE)
            if stuck:
                log.warning("minion_stop_tasks_stuck", tasks=sorted(t.get_name() for t in stuck))
            if self.bus is not None:
                await self.bus.close()
            if self.ctx.vrrp is not None:
                self.ctx.vrrp.close()  # nobody would end a yield left behind
            for w in self.watches:
                w.close()  # keepalived's own check decides alone
        if died:
            raise MinionFailed(self.cfg.id, died)
