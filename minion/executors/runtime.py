"""``haproxy.runtime``, ``service.*`` and ``test.ping``: the small executors.

``haproxy.runtime`` speaks only three verbs on the admin socket (set_state, set_weight,
shutdown_sessions) with names checked against a strict pattern, so no input can smuggle a
second command. ``service.*`` uses systemctl when systemd runs, else the argument lists
configured per service in minion.yaml; an unconfigured service is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

from hactl import __version__
from hactl.log import get_logger
from hactl.minion.admin_socket import admin_command
from hactl.minion.executors.base import (
    Arg,
    CommandRefused,
    ExecContext,
    Executor,
    ServiceCommands,
)
from hactl.minion.executors.proc import run_argv
from hactl.minion.process_watch import wait_exit
from hactl.schema import Field, SchemaError
from hactl.wire.haproxy import COMMAND, FIELDS, HaproxyRuntime

log = get_logger("hactl.minion")

_ADMIN_LOCK = asyncio.Lock()


async def haproxy_runtime(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """Change one server at runtime through the admin socket."""
    try:
        change = HaproxyRuntime.from_checked(args)  # the executor table checked FIELDS
    except SchemaError as exc:
        raise CommandRefused(COMMAND, f"{exc.field} {exc.reason}".strip()) from None
    if not ctx.haproxy_socket:
        raise CommandRefused(COMMAND, "no haproxy admin socket configured")
    line = change.admin_line()
    try:
        async with _ADMIN_LOCK:  # one admin-socket session at a time (HAProxy's stats maxconn)
            answer = (await admin_command(ctx.haproxy_socket, line)).strip()
    except (OSError, TimeoutError) as exc:
        return {"result": False, "changes": {}, "comment": f"admin socket: {exc}"}
    ok = answer == "" or answer.lower().startswith("done")
    return {"result": ok, "changes": {"command": line} if ok else {}, "comment": answer or "done"}


HAPROXY_RUNTIME = Executor(name=COMMAND, args=FIELDS, body=haproxy_runtime)


def _service(action: str) -> Executor:
    async def body(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
        name = args["name"]
        if name not in ctx.services:
            raise CommandRefused(
                f"service.{action}", f"service {name!r} is not configured on this minion"
            )
        svc = ctx.services[name]
        if ctx.use_systemd:
            argv = ["systemctl", action, name]
        elif action == "restart" and not svc.restart and svc.stop and svc.start:
            async with planned(ctx, name, action, drain=args.get("pre_stop", True)):
                return await stop_then_start(ctx, name, svc)
        elif action == "start" and svc.start:
            ok, out = await start_checked(ctx, name, svc)
            return {"result": ok, "changes": {action: name} if ok else {}, "comment": out}
        elif action == "stop" and svc.stop:
            # held until the daemon is gone
            async with planned(ctx, name, action, drain=args.get("pre_stop", True)):
                ok, out = await stop_waited(ctx, name, svc)
            return {"result": ok, "changes": {action: name} if ok else {}, "comment": out}
        else:
            argv = svc.argv(action)
            if not argv:
                raise CommandRefused(f"service.{action}", f"no {action} command for {name}")
        async with planned(ctx, name, action, drain=args.get("pre_stop", True)):
            res = await run_argv(argv, ctx.command_timeout)
        return {
            "result": res.code == 0,
            "changes": {action: name} if res.code == 0 else {},
            "comment": res.output[-2000:] or f"{action} {name}: exit {res.code}",
        }

    args: tuple[Arg, ...] = (Arg("name", (str,)),)
    if action in ("stop", "restart"):  # false: the service's pre_stop (a drain) is skipped
        args += (Arg("pre_stop", (bool,), required=False, default=True),)
    return Executor(name=f"service.{action}", args=args, body=body)


#: seconds a service's pre_stop may take before the stop goes on without it
PRE_STOP_TIMEOUT = 20.0


async def pre_stop(ctx: ExecContext, name: str) -> None:
    """The service's ``pre_stop`` before a planned stop or restart (RabbitMQ's drain); its
    failure is logged, never fatal: the stop was asked for."""
    svc = ctx.services.get(name)
    if svc is None or not svc.pre_stop or (svc.pid() is None and not ctx.use_systemd):
        return
    # bounded on its own: a paused broker's drain must not delay the restart that repairs it
    res = await run_argv(svc.argv("pre_stop"), min(ctx.command_timeout, PRE_STOP_TIMEOUT))
    if res.code != 0:
        log.warning(
            "service_pre_stop_failed", service=name, code=res.code, output=res.output[-300:]
        )
    else:
        log.info("service_pre_stop", service=name)


@contextlib.asynccontextmanager
async def planned(
    ctx: ExecContext, name: str, action: str, *, drain: bool = True
) -> AsyncIterator[None]:
    """Supervision of ``name`` suspended while ``action`` stops or restarts it (start and
    reload never stop it: nothing to suspend), its ``pre_stop`` run first unless ``drain``
    is false (a paused broker's repair: nothing to drain)."""
    if action not in ("stop", "restart"):
        yield
        return
    async with ctx.planned.hold(name, f"service.{action}", running_after=action == "restart"):
        if drain:
            await pre_stop(ctx, name)
        yield


#: how long a started daemon has to show it runs when its service has no start_grace
SHOW_WITHIN = 1.0
#: how long a start waits for a previous copy's processes to be gone (its children exiting
#: after a kill -9 of their parent, a zombie its reaper has not collected yet)
LEFTOVERS_WITHIN = 10.0


async def _previous_gone(svc: ServiceCommands, within: float) -> list[int]:
    """Wait (bounded) until no pid file of the service names a process still present; the
    pids still there when the wait ends ([] when none)."""
    deadline = time.monotonic() + within
    while (left := svc.leftovers()) and svc.pid() is None:
        if time.monotonic() >= deadline:
            return left
        await asyncio.sleep(0.05)
    return []


async def _shows(ctx: ExecContext, svc: ServiceCommands, within: float) -> bool:
    """Whether the service runs (status command or live pid) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if svc.status:
            if (await run_argv(svc.argv("status"), ctx.command_timeout)).code == 0:
                return True
        elif svc.pid() is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)


async def start_checked(ctx: ExecContext, name: str, svc: ServiceCommands) -> tuple[bool, str]:
    """Start a service (no systemd) and report success only when it runs: a start command
    that exits 0 is not evidence. keepalived started while the children of a copy killed
    with -9 are still exiting sees their pid files and quits with status 0 (lab: an apply
    reported ok and keepalived stayed down). Never started twice here: a daemon slower than
    its ``start_grace`` would get a second copy. A start first waits (bounded) until the pids
    of a previous copy are gone: started while a killed keepalived's children were exiting,
    or while the killed parent was still an unreaped zombie (the lab's init reaps every ~2 s),
    keepalived took them for a running copy and quit."""
    if svc.pid() is None and (left := await _previous_gone(svc, LEFTOVERS_WITHIN)):
        log.warning("service_start_leftovers", service=name, pids=left)
    res = await run_argv(svc.argv("start"), ctx.command_timeout)
    out = res.output[-2000:]
    if res.code != 0:
        return False, out or f"start {name}: exit {res.code}"
    if not (svc.status or svc.pidfile):  # nothing to look at: the exit status is all
        return True, out
    within = max(svc.start_grace, SHOW_WITHIN)
    if await _shows(ctx, svc, within):
        return True, out
    why = f"start {name}: the command succeeded but {name} does not run after {within:g} s"
    return False, f"{why} {out}".strip()


async def stop_waited(ctx: ExecContext, name: str, svc: ServiceCommands) -> tuple[bool, str]:
    """Stop a service (no systemd) and wait (bounded) until its pid is gone -- SIGKILL after
    half the command timeout, as a service manager does after its stop timeout --; (whether
    it is gone, the stop command's output). A stop command that only signals (``kill -TERM``)
    returns before the daemon exits: the caller's supervision hold must last until it has."""
    pid = svc.pid()
    stopped = await run_argv(svc.argv("stop"), ctx.command_timeout)
    if pid is not None:
        grace = ctx.command_timeout / 2
        try:  # its exit, from the kernel (a pidfd)
            await asyncio.wait_for(wait_exit(pid), grace)
        except TimeoutError:
            # a hung process (SIGSTOPped, stuck in the kernel) never handles the stop: what a
            # service manager does after its stop timeout -- SIGKILL, then wait again
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wait_exit(pid), grace)
    if svc.pid() is not None:
        return False, f"{name} still runs after stop {stopped.output[-500:]}".strip()
    return True, stopped.output[-2000:]


async def stop_then_start(ctx: ExecContext, name: str, svc: ServiceCommands) -> dict[str, Any]:
    """A restart without a restart command: :func:`stop_waited`, then start."""
    gone, stopped = await stop_waited(ctx, name, svc)
    if not gone:
        return {"result": False, "changes": {}, "comment": stopped}
    ok, out = await start_checked(ctx, name, svc)
    return {
        "result": ok,
        "changes": {"restart": name} if ok else {},
        "comment": (stopped + out)[-2000:] or f"restart {name}",
    }


async def service_running(ctx: ExecContext, name: str) -> bool:
    """Whether a configured service runs (systemd, its status command, or its pidfile)."""
    if ctx.use_systemd:
        return (await run_argv(["systemctl", "is-active", "--quiet", name], 10)).code == 0
    svc = ctx.services[name]
    if svc.status:
        return (await run_argv(svc.argv("status"), ctx.command_timeout)).code == 0
    return svc.pid() is not None


async def service_action(
    ctx: ExecContext, name: str, action: str, *, await_running: bool = True, drain: bool = True
) -> tuple[bool, str]:
    """Run a configured service's start/stop/reload/restart; (ok, output). A stop or restart
    suspends the supervision of that service while it runs (minion/planned.py), after its
    ``pre_stop`` unless ``drain`` is false. A start is ok only once the service runs
    (``await_running``; the singleton keeper watches its copy itself)."""
    async with planned(ctx, name, action, drain=drain):
        return await _service_action(ctx, name, action, await_running)


async def _service_action(
    ctx: ExecContext, name: str, action: str, await_running: bool = True
) -> tuple[bool, str]:
    if ctx.use_systemd:
        res = await run_argv(["systemctl", action, name], ctx.command_timeout)
    else:
        svc = ctx.services[name]
        if action == "restart" and not svc.restart and svc.stop and svc.start:
            # stop, wait for its pid to end (SIGKILL after half the timeout), start: as
            # service.restart does (a config change that rolls a broker)
            out = await stop_then_start(ctx, name, svc)
            return bool(out["result"]), str(out["comment"])
        if action == "start" and svc.start and await_running:
            return await start_checked(ctx, name, svc)
        if action == "stop" and svc.stop:
            # held until the daemon is gone, not just signalled: a supervisor that saw it die
            # after the hold ended would count a death and start it again
            return await stop_waited(ctx, name, svc)
        argv = svc.argv(action)
        if not argv:
            return False, f"no {action} command configured for {name}"
        res = await run_argv(argv, ctx.command_timeout)
    return res.code == 0, res.output[-2000:] or f"{action} {name}: exit {res.code}"


async def ping(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """Liveness and identity."""
    return {"pong": True, "id": ctx.minion_id, "version": __version__, "ts": time.time()}


TEST_PING = Executor(name="test.ping", args=(), body=ping)


async def cleanup(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """Forget a supervised service's failures (``hactl cleanup``)."""
    if ctx.supervision is None:
        raise CommandRefused("supervision.cleanup", "this minion supervises nothing")
    try:
        reset = ctx.supervision.cleanup(args["service"])
    except KeyError:
        raise CommandRefused(
            "supervision.cleanup", f"{args['service']!r} is not supervised on this minion"
        ) from None
    return {"result": True, "changes": {"reset": reset}, "comment": f"{len(reset)} reset"}


SUPERVISION_CLEANUP = Executor(
    name="supervision.cleanup",
    args=(Field("service", (str,), False, "", doc="one supervised service; '' = all"),),
    body=cleanup,
    doc="forget failure counts and given-up states (Pacemaker's cleanup)",
)
SERVICE_EXECUTORS = tuple(_service(a) for a in ("start", "stop", "reload", "restart"))
