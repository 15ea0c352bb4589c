"""Executors: the explicit allowlist of commands the master may send to a minion."""

from __future__ import annotations

from hactl.log import get_logger
from hactl.minion.executors.base import CommandRefused, ExecContext, Executor, validate_args
from hactl.minion.executors.beacons import BEACON_RESYNC
from hactl.minion.executors.files import FILE_APPLY
from hactl.minion.executors.galera import GALERA_BOOTSTRAP, GALERA_POSITION, GALERA_START
from hactl.minion.executors.rabbitmq import RABBITMQ_FORGET_NODE
from hactl.minion.executors.runtime import (
    HAPROXY_RUNTIME,
    SERVICE_EXECUTORS,
    SUPERVISION_CLEANUP,
    TEST_PING,
)
from hactl.minion.executors.state import STATE_APPLY
from hactl.minion.executors.vrrp import VRRP_ANNOUNCE, VRRP_YIELD
from hactl.wire.commands import CommandReply, CommandRequest, error_reply

log = get_logger("hactl.minion")

REGISTRY: dict[str, Executor] = {
    ex.name: ex
    for ex in (
        FILE_APPLY,
        HAPROXY_RUNTIME,
        TEST_PING,
        *SERVICE_EXECUTORS,
        SUPERVISION_CLEANUP,
        GALERA_POSITION,
        GALERA_BOOTSTRAP,
        GALERA_START,
        RABBITMQ_FORGET_NODE,
        STATE_APPLY,
        VRRP_YIELD,
        VRRP_ANNOUNCE,
        BEACON_RESYNC,
    )
}


async def dispatch(ctx: ExecContext, req: CommandRequest) -> CommandReply:
    """Validate and run one command; every refusal or failure is a typed error reply."""
    ex = REGISTRY.get(req.cmd)
    if ex is None:
        return error_reply(
            req.jid,
            "UnknownCommand",
            f"{req.cmd} is not a command this minion runs (known: {', '.join(sorted(REGISTRY))})",
        )
    try:
        args = validate_args(ex, req.args)
        result = await ex.body(ctx, args)
    except CommandRefused as exc:
        log.warning("command_refused", cmd=req.cmd, jid=req.jid, reason=exc.reason)
        return error_reply(req.jid, "CommandRefused", exc.reason)
    except OSError as exc:
        log.warning("command_failed", cmd=req.cmd, jid=req.jid, error=str(exc))
        return error_reply(req.jid, "OSError", str(exc))
    log.info("command_done", cmd=req.cmd, jid=req.jid, result=result.get("result"))
    return CommandReply(jid=req.jid, ok=True, result=result)


__all__ = ["REGISTRY", "ExecContext", "Executor", "dispatch"]
