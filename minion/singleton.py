"""The holder's side of the singleton leases (docs/singletons.md).

For each singleton of this node (the ``singleton.running`` resources ``hactl apply`` pushed,
kept in ``singletons.dir`` so a restarted minion carries on), the keeper:

- **renews** every ``renew`` seconds on ``hactl.lease.<id>.renew`` -- the one subject this
  minion may publish renewals on -- reading its monotonic clock *before* sending; an
  acknowledgement from the leading master means "hold it until ``sent + lease``";
- **starts** the service (a command of its own ``services`` allowlist) only while it holds a
  current lease, with a guard beside it (minion/singleton_guard.py) that stops it at
  ``stop_at`` even when this process is hung or dead;
- **stops** it itself at ``stop_at`` when renewals are not acknowledged (self-fence), at once
  when the master says it does not hold it, and before giving the lease back (``release``);
- **monitors** it every ``monitor`` seconds like a resource agent: a dead copy is a failure
  (counted over ``failure_expiry``), restarted in place below ``failures``, stopped and
  released at the threshold so the master moves it;
- publishes its state as the ``singleton`` beacon (``hactl events tail`` shows every start,
  stop, self-fence and failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hactl.errors import BusError, DecodeError
from hactl.log import get_logger
from hactl.minion.executors.base import ExecContext
from hactl.minion.executors.runtime import service_action, service_running
from hactl.minion.process_watch import wait_exit
from hactl.wire.singleton import (
    RenewItem,
    SingletonSpec,
    decode_spec,
    encode_request,
    encode_spec,
    renew_reply,
    renew_subject,
    stop_at,
)

log = get_logger("hactl.minion")


@dataclass(frozen=True, slots=True)
class SingletonSettings:
    """minion.yaml ``singletons``: where the keeper keeps specs, lease files and guard logs
    (root-owned, 0700; on tmpfs such as /run the lease files vanish with a reboot, which is
    right: a rebooted node holds no lease)."""

    dir: str

    def __post_init__(self) -> None:
        if not os.path.isabs(self.dir):
            raise ValueError(f"dir must be an absolute path, got {self.dir!r}")


@dataclass
class _Copy:
    spec: SingletonSpec
    token: int = 0  # the fencing token of the lease held (0: none)
    stop_at: float = 0.0  # monotonic: the copy must begin to stop by then
    running: bool = False  # its copy runs (last probe)
    started: bool = False  # this keeper started it and expects it to run
    release: bool = False  # give the lease back at the next renewal
    failures: deque[float] = field(default_factory=deque)
    guard: subprocess.Popen[bytes] | None = None
    last: str = ""  # the last thing that happened (for the beacon)
    unrenewed: bool = False  # the last renewal was not acknowledged (said once)
    stopping: bool = False  # a stop is under way: nothing starts it meanwhile
    since: float = 0.0


class SingletonKeeper:
    """Runs this node's singleton copies only under a current lease."""

    def __init__(self, node: str, folder: Path, ctx: ExecContext) -> None:
        self.node = node
        self.dir = folder
        self.ctx = ctx
        self.copies: dict[str, _Copy] = {}
        self.bus: Any = None  # set when connected (hactl.bus.Bus)
        self.changed = asyncio.Event()
        self.events: deque[dict[str, Any]] = deque(maxlen=200)  # for the beacon
        self._poke = asyncio.Event()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path in sorted(self.dir.glob("*.spec.json")):
            try:
                spec = decode_spec(path.read_bytes())
            except (OSError, DecodeError) as exc:
                log.error("singleton_spec_unreadable", path=str(path), error=str(exc))
                continue
            self.copies[spec.name] = _Copy(spec)

    # -- configuration (hactl apply) --------------------------------------------------------

    def configure(self, spec: SingletonSpec) -> str:
        """Take (or update) a singleton from the state tree; '' or why it is refused."""
        if self.node not in spec.nodes:
            return f"{self.node} is not among {spec.name}'s nodes"
        if spec.service not in self.ctx.services:
            return f"service {spec.service!r} is not in this minion's services allowlist"
        tmp = self.dir / f".{spec.name}.spec.json"
        tmp.write_bytes(encode_spec(spec))
        tmp.replace(self.dir / f"{spec.name}.spec.json")
        cur = self.copies.get(spec.name)
        if cur is None:
            self.copies[spec.name] = _Copy(spec)
        else:
            cur.spec = spec
        self._poke.set()
        return ""

    # -- the loops --------------------------------------------------------------------------

    async def run(self) -> None:
        """Renew and monitor until cancelled; on the way out stop every copy."""
        try:
            await asyncio.gather(self._renew_loop(), self._monitor_loop())
        finally:
            for c in self.copies.values():
                with contextlib.suppress(Exception):
                    await self._stop(c, "minion stopping")

    async def _renew_loop(self) -> None:
        while True:
            period = min((c.spec.renew for c in self.copies.values()), default=1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), period)
            self._poke.clear()
            if self.copies and self.bus is not None:
                await self.renew_once()

    async def renew_once(self) -> None:
        """One renewal of every singleton of this node."""
        copies = list(self.copies.values())
        now = time.monotonic()
        for c in copies:
            self._expire_failures(c, now)
        items = [
            RenewItem(c.spec.name, c.token, c.running, c.release, len(c.failures)) for c in copies
        ]
        sent = time.monotonic()  # before sending: the lease is counted from here
        try:
            data = await self.bus.request_raw(
                renew_subject(self.node),
                encode_request(items),
                timeout=min(c.spec.renew for c in copies),
            )
            leader, grants = renew_reply(data)
        except DecodeError as exc:
            self._unrenewed(copies, f"the answer was refused ({exc.detail})")
            return
        except BusError as exc:  # no answer, no responders, disconnected: not renewed
            self._unrenewed(copies, f"no answer ({exc.detail})")
            return
        if not leader:
            self._unrenewed(copies, "no master leads (NATS majority or leader key lost)")
            return
        for c in copies:
            if c.unrenewed and grants.get(c.spec.name) is not None:
                c.unrenewed = False
                if c.token:
                    self._note(c, "renewals acknowledged again")
            g = grants.get(c.spec.name)
            if g is None:
                continue
            if c.release and not g.hold:
                c.release = False  # given back (or never held)
            if g.hold and not c.release:
                first = c.token != g.token
                c.token, c.stop_at = g.token, stop_at(sent, c.spec)
                self._write_stop_at(c)
                if first:
                    self._note(c, f"granted (token {g.token})")
                if not c.started:
                    await self._start(c, "lease granted")
            elif c.token or c.started:
                await self._stop(c, f"not the holder: {g.reason or 'lease not renewed'}")
                c.token, c.release = 0, bool(g.token)  # revoked: say when it is stopped

    async def _monitor_loop(self) -> None:
        while True:
            period = min((c.spec.monitor for c in self.copies.values()), default=1.0)
            await asyncio.sleep(min(period, 0.2))
            now = time.monotonic()
            for c in list(self.copies.values()):
                await self._check(c, now)

    async def _check(self, c: _Copy, now: float) -> None:
        fenced = self.dir / f"{c.spec.name}.fenced"
        if fenced.exists():
            fenced.unlink()
            c.started, c.token = False, 0
            self._note(c, "the guard fenced it (lease ran out)")
        if c.started and now >= c.stop_at:
            await self._stop(c, "self-fence: lease not renewed in time")
            c.token = 0
            return
        if not c.started or now - c.since < c.spec.monitor:
            return
        c.since = now
        c.running = await service_running(self.ctx, c.spec.service)
        if c.running:
            return
        c.failures.append(now)
        self._expire_failures(c, now)
        if len(c.failures) < c.spec.failures:
            self._note(c, f"failed ({len(c.failures)}/{c.spec.failures}): restarted in place")
            await self._start(c, "restart in place")
            return
        self._note(c, f"failed {len(c.failures)} times: stopped, lease given back")
        # given back only once it is stopped (the master grants it elsewhere on a release);
        # while it stops, `stopping` keeps a renewal answered meanwhile from starting it
        await self._stop(c, "failure threshold")
        c.token, c.release = 0, True
        self._poke.set()  # tell the master now

    # -- the copy ---------------------------------------------------------------------------

    def _files(self, c: _Copy) -> dict[str, Path]:
        n = c.spec.name
        return {
            "stop_at": self.dir / f"{n}.stop_at",
            "guard_cfg": self.dir / f"{n}.guard.json",
            "guard_pid": self.dir / f"{n}.guard.pid",
            "fenced": self.dir / f"{n}.fenced",
            "guard_log": self.dir / f"{n}.guard.log",
        }

    def _write_stop_at(self, c: _Copy) -> None:
        f = self._files(c)["stop_at"]
        tmp = f.with_name(f".{f.name}")
        tmp.write_text(f"{c.stop_at:.3f}\n")
        tmp.replace(f)

    def _ensure_guard(self, c: _Copy) -> None:
        if c.guard is not None and c.guard.poll() is None:
            return
        f, svc = self._files(c), self.ctx.services[c.spec.service]
        cfg = {
            "name": c.spec.name,
            "stop_at_file": str(f["stop_at"]),
            "guard_pidfile": str(f["guard_pid"]),
            "fenced_file": str(f["fenced"]),
            "pidfile": svc.pidfile,
            "stop": list(svc.stop),
            "unit": c.spec.service if self.ctx.use_systemd else "",
            "grace": c.spec.stop_timeout,
        }
        f["guard_cfg"].write_text(json.dumps(cfg))
        argv = [sys.executable, "-m", "hactl.minion.singleton_guard", str(f["guard_cfg"])]
        if self.ctx.use_systemd:  # its own unit: stopping the minion's does not take it along
            argv = [
                "systemd-run",
                "--quiet",
                "--collect",
                f"--unit=hactl-guard-{c.spec.name}",
                *argv,
            ]
        with f["guard_log"].open("ab") as out:
            c.guard = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )

    async def _start(self, c: _Copy, why: str) -> None:
        if time.monotonic() >= c.stop_at or c.stopping or c.release:
            return  # never without time left on the lease, while stopping, or given back
        self._ensure_guard(c)
        # not verified here: the keeper's own monitor watches the copy, and the loop renews
        # leases (a wait for the pid file would delay them)
        ok, out = await service_action(self.ctx, c.spec.service, "start", await_running=False)
        c.started, c.since = True, time.monotonic()
        c.running = ok and await service_running(self.ctx, c.spec.service)
        self._note(c, f"started ({why})" if ok else f"start failed: {out[-200:]}")

    async def _stop(self, c: _Copy, why: str) -> None:
        """Stop the copy (bounded: SIGKILL after half of stop_timeout) and end its guard."""
        with contextlib.suppress(FileNotFoundError):
            self._files(c)["stop_at"].unlink()  # the guard exits
        if not c.started and not await service_running(self.ctx, c.spec.service):
            return
        c.stopping = True
        try:
            await self._stop_copy(c)
        finally:
            c.stopping = False
        self._note(c, f"stopped ({why})")

    async def _stop_copy(self, c: _Copy) -> None:
        svc = self.ctx.services[c.spec.service]
        pid = svc.pid()
        if self.ctx.use_systemd or svc.stop:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    service_action(self.ctx, c.spec.service, "stop"), c.spec.stop_timeout / 2
                )
        elif pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if pid is not None:
            try:
                await asyncio.wait_for(wait_exit(pid), c.spec.stop_timeout / 2)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wait_exit(pid), 1.0)
        c.started = c.running = False
        if c.guard is not None:  # it exits within its tick once the stop_at file is gone
            for _ in range(10):
                if c.guard.poll() is not None:
                    break
                await asyncio.sleep(0.05)

    def _unrenewed(self, copies: list[_Copy], why: str) -> None:
        """A renewal nobody acknowledged: said once per holder (the beacon shows it; the
        copy stops at its stop_at unless a later renewal is acknowledged)."""
        for c in copies:
            if c.token and not c.unrenewed:
                left = max(0.0, c.stop_at - time.monotonic())
                self._note(c, f"renewal not acknowledged: {why}; stops in {left:.1f} s")
            c.unrenewed = True

    def _expire_failures(self, c: _Copy, now: float) -> None:
        while c.failures and now - c.failures[0] > c.spec.failure_expiry:
            c.failures.popleft()

    def _note(self, c: _Copy, what: str) -> None:
        c.last = what
        log.info("singleton", name=c.spec.name, what=what, token=c.token)
        self.events.append({"name": c.spec.name, "what": what, "ts": time.time()})
        self.changed.set()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per singleton: holding (token), running, failures, seconds of lease left, the last
        thing that happened (the beacon's items)."""
        now = time.monotonic()
        return {
            n: {
                "holding": bool(c.token),
                "token": c.token,
                "running": c.running,
                "failures": len(c.failures),
                "lease_left": round(max(0.0, c.stop_at - now), 1) if c.token else 0.0,
                "last": c.last,
            }
            for n, c in sorted(self.copies.items())
        }


class SingletonBeacon:
    """The keeper's state as the ``singleton`` beacon: an event at once on every start, stop,
    grant, self-fence and failure (significant: holding, running, failures, last)."""

    name = "singleton"
    significant = frozenset({"holding", "running", "failures", "last"})
    interval = 5.0

    def __init__(self, keeper: SingletonKeeper) -> None:
        self.keeper = keeper
        self.wakeup = keeper.changed

    async def poll(self) -> dict[str, dict[str, Any]]:
        """The state now."""
        return self.keeper.snapshot()

    async def close(self) -> None:
        """Nothing held."""
