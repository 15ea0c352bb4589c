"""Supervision: the minion starts a dead HAProxy, keepalived, broker or API service again by
itself, so it works while the master (or NATS) is away.

Only what ran is kept running: a service never seen running since the minion started (not
yet deployed, or stopped on purpose before) is left alone. The policy is Pacemaker's: a
service found dead is started again at once, then with an
exponential backoff (1, 2, 4 ... s, at most ``backoff_max``); deaths are counted in a sliding
``window`` (``failure-timeout``) and at ``threshold`` deaths in that window the service is left
stopped (``migration-threshold``) and reported (``given_up``, an alert through the shipped
``service-given-up`` rule). A given-up service is tried again once its last death is older than
the window; one started by hand is supervised again with a clean count (Pacemaker's
cleanup). mariadbd is never supervised here: a Galera node is only started from a known
position (the Galera rules).

The supervisor's state is published as the ``supervisor`` beacon (items per service), so the
view, ``hactl status`` and the rules see it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hactl.errors import HactlError
from hactl.log import get_logger
from hactl.minion.beacons.base import Snapshot
from hactl.minion.executors.base import ExecContext
from hactl.minion.executors.runtime import service_action, service_running
from hactl.schema import Field, SchemaError, check
from hactl.wire.maint import ALL, decode, maint_key

#: which maintenance component a supervised service belongs to
SERVICE_COMPONENT = {
    "haproxy": "haproxy",
    "keepalived": "keepalived",
    "rabbitmq": "rabbitmq",
    "rabbitmq-server": "rabbitmq",
}

log = get_logger("hactl.minion")

FIELDS = (
    Field("services", (list,), doc="names from `services` to keep running"),
    Field("interval", (int, float), required=False, default=1.0, between=(0.1, 60)),
    Field("threshold", (int,), required=False, default=5, between=(1, 100)),
    Field("window", (int, float), required=False, default=60.0, between=(1, 86_400)),
    Field("backoff_max", (int, float), required=False, default=30.0, between=(0, 3600)),
)


@dataclass(frozen=True, slots=True)
class SupervisionPolicy:
    """minion.yaml ``supervision``."""

    services: tuple[str, ...]
    interval: float = 1.0
    threshold: int = 5
    window: float = 60.0
    backoff_max: float = 30.0

    @classmethod
    def parse(cls, raw: Mapping[str, Any], known: set[str]) -> SupervisionPolicy:
        """Checked with the one schema mechanism; services must be configured ones."""
        values = check("supervision", FIELDS, raw)
        names = values["services"]
        if not all(isinstance(n, str) for n in names):
            raise SchemaError("supervision", "services", "must be a list of service names")
        if unknown := sorted(set(names) - known):
            raise SchemaError("supervision", "services", f"not configured in services: {unknown}")
        if "mariadb" in names or "mariadbd" in names:
            raise SchemaError(
                "supervision",
                "services",
                "mariadb is started by the Galera "
                "rules from a known position, never supervised blindly",
            )
        return cls(
            tuple(names),
            float(values["interval"]),
            int(values["threshold"]),
            float(values["window"]),
            float(values["backoff_max"]),
        )


@dataclass
class _Watch:
    running: bool = False  # seen running at the last check (only what ran is kept running)
    down: bool = False  # died after running: being brought back
    maint: bool = False  # left alone: under a maintenance window
    deaths: deque[float] = field(default_factory=deque)
    restarts: int = 0
    next_try: float = 0.0
    given_up: bool = False
    last_error: str = ""
    suspended: str = ""  # planned work holds it (minion/planned.py): the work's name
    verify_until: float = 0.0  # after a planned restart: not a death before this time


class Supervisor:
    """Keeps the policy's services running on this node."""

    def __init__(
        self,
        ctx: ExecContext,
        policy: SupervisionPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self.policy = policy
        self.clock = clock
        self.watch = {name: _Watch() for name in policy.services}

    def delay(self, deaths: int) -> float:
        """Seconds before the restart after the ``deaths``-th death in the window."""
        return 0.0 if deaths <= 1 else min(self.policy.backoff_max, 2.0 ** (deaths - 2))

    async def step(self) -> None:
        """Check every service once; start the dead ones the policy allows."""
        for name, w in self.watch.items():
            if reason := self.ctx.planned.held(name):
                if w.suspended != reason:
                    log.info("supervision_suspended", service=name, reason=reason)
                w.suspended = reason
                continue  # hactl itself is stopping or restarting it: not a death
            running = await service_running(self.ctx, name)
            if self._resumed(name, w, running):
                continue
            await self._check(name, w, running)

    def _resumed(self, name: str, w: _Watch, running: bool) -> bool:
        """After planned work on ``name``: True when the work left it stopped on purpose
        (nothing more to do); else the normal check follows -- running, it is supervised
        again; meant to run and not running, its restart failed: a death, started again."""
        meant = self.ctx.planned.ended(name)
        if not w.suspended and meant is None:
            return False
        log.info("supervision_resumed", service=name, after=w.suspended, running=running)
        w.suspended = ""
        if not running and meant is False:
            w.running, w.down = False, False
            return True
        if not running and (grace := self._grace(name)) > 0:
            # a restart's start returned; the daemon may still be booting (a broker writes
            # its pid file seconds later): verified within its grace, never started twice
            w.running, w.down = False, True
            w.verify_until = self.clock() + grace
            return True
        w.running = w.running or meant is True  # meant to run: not running is a death
        return False

    async def _check(self, name: str, w: _Watch, running: bool) -> None:
        """One service's step outside planned work."""
        now = self.clock()
        if running:
            w.verify_until = 0.0
        elif now < w.verify_until:
            return  # a daemon just started is still booting: one copy, never a second
        elif w.verify_until:  # it never showed it runs: that start failed
            w.verify_until = 0.0
            w.deaths.append(now)
            w.running, w.down = False, True
            w.next_try = now + self.delay(len(w.deaths))
            log.warning("service_start_not_seen", service=name, grace_s=self._grace(name))
        while w.deaths and now - w.deaths[0] > self.policy.window:
            w.deaths.popleft()
        if running:
            if w.given_up:  # started by hand: like Pacemaker's cleanup, a clean count
                log.info("service_supervised_again", service=name, reason="running")
                w.deaths.clear()
            w.running, w.given_up, w.down = True, False, False
            return
        if not w.running and not w.down:
            return  # never seen running (or stopped on purpose): not ours to start
        if w.running:  # it was running at the last check: a death
            w.running, w.down = False, True
            w.deaths.append(now)
            w.next_try = now + self.delay(len(w.deaths))
            log.warning("service_died", service=name, deaths_in_window=len(w.deaths))
        if w.given_up:
            if w.deaths:
                return
            w.given_up = False  # the window passed: try again
            w.next_try = now
        if len(w.deaths) >= self.policy.threshold:
            w.given_up = True
            log.critical(
                "service_given_up", service=name, deaths=len(w.deaths), window_s=self.policy.window
            )
            return
        if now < w.next_try:
            return
        if window := await self._maintenance(name):
            if not w.maint:
                log.info("service_left_alone", service=name, reason="maintenance", window=window)
            w.maint = True
            return
        w.maint = False
        await self._start(name, w)

    async def _start(self, name: str, w: _Watch) -> None:
        ok, out = await service_action(self.ctx, name, "start")
        w.restarts += 1
        w.last_error = "" if ok else out[-200:]
        if not ok:  # a start that fails counts as a failure too
            w.deaths.append(self.clock())
        w.next_try = self.clock() + max(1.0, self.delay(len(w.deaths) + 1))
        log.info(
            "service_restarted" if ok else "service_restart_failed",
            service=name,
            restarts=w.restarts,
            output=out[-200:],
        )
        if ok and await service_running(self.ctx, name):
            w.running = True
        elif ok and (grace := self._grace(name)) > 0:  # started, not yet showing it runs
            # (a broker writes its pid file late): its boot grace before a second copy
            w.down = True
            w.verify_until = self.clock() + grace

    def _grace(self, name: str) -> float:
        """minion.yaml ``services.<name>.start_grace`` (0: none)."""
        svc = self.ctx.services.get(name)
        return svc.start_grace if svc is not None else 0.0

    async def _maintenance(self, name: str) -> str:
        """The maintenance window covering service ``name`` on this node ('' when none): the
        node's own keys and the cluster-wide ones, read from KV (unreadable counts as none:
        the master's rules are the second guard)."""
        if self.ctx.maint is None:
            return ""
        component = SERVICE_COMPONENT.get(name, "api")
        node = self.ctx.minion_id
        for key in (
            maint_key(node, component),
            maint_key(node, ALL),
            maint_key(ALL, component),
            maint_key(ALL, ALL),
        ):
            try:
                data = await self.ctx.maint(key)
                record = decode(data) if data is not None else None
            except HactlError:
                continue
            if record is not None and record.active() and record.covers(node, component):
                return key
        return ""

    def cleanup(self, service: str = "") -> list[dict[str, Any]]:
        """Pacemaker's ``crm_resource --cleanup``: forget the failures of ``service`` (every
        supervised one when ''): the death count, restarts and a given-up state. A service
        that is down is tried again at the next step. What was reset, one record each;
        KeyError for a service this minion does not supervise."""
        if service and service not in self.watch:
            raise KeyError(service)
        out = []
        now = self.clock()
        for name in [service] if service else sorted(self.watch):
            w = self.watch[name]
            before = {"deaths": len(w.deaths), "restarts": w.restarts, "given_up": w.given_up}
            w.deaths.clear()
            w.restarts, w.given_up, w.last_error = 0, False, ""
            if w.down:
                w.next_try = now  # down and no longer given up: started at the next step
            out.append({"service": name, "was": before, "down": w.down})
            log.info("supervision_cleaned_up", service=name, **before)
        return out

    def forget(self, name: str) -> None:
        """The service was stopped on purpose (``service.stop``): not a death; it is kept
        running again once it is seen running."""
        if name in self.watch:
            self.watch[name] = _Watch()

    def snapshot(self) -> Snapshot:
        """The ``supervisor`` beacon's items."""
        return {
            name: {
                "running": w.running,
                "deaths": len(w.deaths),
                "restarts": w.restarts,
                "given_up": w.given_up,
                "last_error": w.last_error,
                "suspended": w.suspended,
            }
            for name, w in self.watch.items()
        }


class SupervisorBeacon:
    """The supervisor's loop, run as a beacon: each poll is one supervision step and reports
    the state (significant: running, given_up)."""

    name = "supervisor"
    significant = frozenset({"running", "given_up", "suspended"})

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.interval = supervisor.policy.interval

    async def poll(self) -> Snapshot:
        """One step, then the state."""
        await self.supervisor.step()
        return self.supervisor.snapshot()

    async def close(self) -> None:
        """Nothing held."""
