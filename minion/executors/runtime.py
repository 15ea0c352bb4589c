"""``haproxy.runtime``, ``service.*`` and ``test.ping``: the small executors.

``haproxy.runtime`` speaks only three verbs on the admin socket (set_state, set_weight,
shutdown_sessions) with names checked against a strict pattern, so no input can smuggle a
second command. ``service.*`` uses systemctl when systemd runs, else the argument lists
configured per service in minion.yaml; an unconfigured service is refused.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from hactl import __version__
from minion.beacons.haproxy import admin_command
from minion.executors.base import Arg, CommandRefused, ExecContext, Executor
from minion.executors.proc import run_argv

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")
STATES = ("ready", "drain", "maint")
_ADMIN_LOCK = asyncio.Lock()


async def haproxy_runtime(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """Change one server at runtime through the admin socket."""
    backend, server, verb = args["backend"], args["server"], args["verb"]
    for what, value in (("backend", backend), ("server", server)):
        if not _NAME.match(value):
            raise CommandRefused("haproxy.runtime", f"bad {what} name {value!r}")
    if not ctx.haproxy_socket:
        raise CommandRefused("haproxy.runtime", "no haproxy admin socket configured")
    if verb == "set_state":
        if args["state"] not in STATES:
            raise CommandRefused("haproxy.runtime", f"state must be one of {', '.join(STATES)}")
        line = f"set server {backend}/{server} state {args['state']}"
    elif verb == "set_weight":
        weight = args["weight"]
        if not isinstance(weight, int) or not 0 <= weight <= 256:
            raise CommandRefused("haproxy.runtime", "weight must be an integer 0..256")
        line = f"set server {backend}/{server} weight {weight}"
    else:
        line = f"shutdown sessions server {backend}/{server}"
    try:
        async with _ADMIN_LOCK:  # one admin-socket session at a time (HAProxy's stats maxconn)
            answer = (await admin_command(ctx.haproxy_socket, line)).strip()
    except (OSError, TimeoutError) as exc:
        return {"result": False, "changes": {}, "comment": f"admin socket: {exc}"}
    ok = answer == "" or answer.lower().startswith("done")
    return {"result": ok, "changes": {"command": line} if ok else {}, "comment": answer or "done"}


HAPROXY_RUNTIME = Executor(
    name="haproxy.runtime",
    args=(
        Arg("verb", (str,), choices=("set_state", "set_weight", "shutdown_sessions")),
        Arg("backend", (str,)),
        Arg("server", (str,)),
        Arg("state", (str,), required=False, choices=STATES),
        Arg("weight", (int,), required=False, between=(0, 256)),  # HAProxy's weight range
    ),
    body=haproxy_runtime,
)


def _service(action: str) -> Executor:
    async def body(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
        name = args["name"]
        if name not in ctx.services:
            raise CommandRefused(
                f"service.{action}", f"service {name!r} is not configured on this minion"
            )
        if ctx.use_systemd:
            argv = ["systemctl", action, name]
        else:
            argv = ctx.services[name].argv(action)
            if not argv:
                raise CommandRefused(f"service.{action}", f"no {action} command for {name}")
        res = await run_argv(argv, ctx.command_timeout)
        return {
            "result": res.code == 0,
            "changes": {action: name} if res.code == 0 else {},
            "comment": res.output[-2000:] or f"{action} {name}: exit {res.code}",
        }

    return Executor(name=f"service.{action}", args=(Arg("name", (str,)),), body=body)


async def ping(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """Liveness and identity."""
    return {"pong": True, "id": ctx.minion_id, "version": __version__, "ts": time.time()}


TEST_PING = Executor(name="test.ping", args=(), body=ping)
SERVICE_EXECUTORS = tuple(_service(a) for a in ("start", "stop", "reload", "restart"))
