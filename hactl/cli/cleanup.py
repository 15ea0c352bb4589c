"""``hactl cleanup NODE [--service S]``: Pacemaker's ``crm_resource --cleanup`` for a minion's
supervision -- forget the failure counts and given-up states, audited, so a service hactl gave
up on is tried again now instead of when its window passes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hactl.bus import Bus
from hactl.cli.runner import fail, print_json, run, settings_of
from hactl.config import resolve_connection
from hactl.errors import CommandError, TagError, UsageError
from hactl.wire.tags import validate_id

COMMAND = "supervision.cleanup"


def cleanup(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="The minion whose supervision to clean up")],
    service: Annotated[
        str, typer.Option("--service", help="One supervised service (default: all)")
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print what was reset as JSON")] = False,
) -> None:
    """Forget a node's supervision failures (deaths, restarts, given up); a service that is
    down is started again at the minion's next check. Audited."""
    settings = settings_of(ctx)
    try:
        validate_id(node)
    except TagError as exc:
        fail(UsageError(exc.reason))

    async def body() -> list[dict[str, Any]]:
        bus = await Bus.connect(
            *resolve_connection(settings), name="hactl-cli", timeout=settings.connect_timeout
        )
        try:
            await bus.audit("cleanup", {"node": node, "service": service})
            reply = await bus.request(node, COMMAND, {"service": service}, timeout=10)
        finally:
            await bus.close()
        if not reply.ok:
            raise CommandError(node, COMMAND, reply.error_message or "refused", kind="refused")
        return list(reply.result.get("changes", {}).get("reset", []))

    reset = run(body())
    if as_json:
        print_json({"node": node, "reset": reset})
        return
    for r in reset:
        was = r["was"]
        state = "given up, " if was["given_up"] else ""
        down = " (down: started again at the next check)" if r["down"] else ""
        typer.echo(
            f"{node} {r['service']}: {state}{was['deaths']} death(s), "
            f"{was['restarts']} restart(s) forgotten{down}"
        )
