"""``hactl approvals``, ``hactl approve ID``, ``hactl deny ID --reason``: a person's answer to
a decision the reactor will not take alone (hactl/wire/approvals.py, docs/reactor.md).

The answer is audited under the person's key first (not stored if it cannot be), then written
with a compare-and-set on the record: only a pending, unexpired question is answered, once.
Only admins may answer (the KV write); operators may list.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hactl.auth.perms import APPROVAL_BUCKET
from hactl.bus import Bus, KeyConflict, NoBucket, bind_bucket
from hactl.cli.runner import fail, print_json, run, settings_of
from hactl.config import Settings, resolve_connection
from hactl.errors import BusError, DecodeError, HactlError, UsageError
from hactl.wire.approvals import AnswerRefused, Approval, answer, decode, encode, key


class ApprovalError(HactlError):
    """An answer that could not be given (the reason is the message)."""


async def _connect(settings: Settings) -> Bus:
    url, auth = resolve_connection(settings)
    return await Bus.connect(url, auth, name="hactl-approve", timeout=settings.connect_timeout)


async def read_all(bus: Bus) -> list[Approval]:
    """Every stored approval, newest first ([] before any master created the bucket)."""
    try:
        values = await bus.read_bucket(APPROVAL_BUCKET)
    except BusError as exc:
        if "no KV bucket" in exc.detail:
            return []
        raise
    out = []
    for raw in values.values():
        try:
            out.append(decode(raw))
        except DecodeError:
            continue
    return sorted(out, key=lambda a: a.asked_at, reverse=True)


def list_(
    ctx: typer.Context,
    everything: Annotated[
        bool, typer.Option("--all", help="Answered and expired ones too")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """Decisions waiting for a person (``--all``: and the answered ones)."""
    settings = settings_of(ctx)

    async def body() -> list[Approval]:
        bus = await _connect(settings)
        try:
            return await read_all(bus)
        finally:
            await bus.close()

    now = time.time()
    found = [a for a in run(body()) if everything or a.open(now)]
    if as_json:
        print_json({"approvals": [_row(a, now) for a in found]})
        return
    if not found:
        typer.echo("no approval is pending" if not everything else "no approvals stored")
        return
    table = Table(title="Approvals")
    for col in ("id", "rule", "state", "asked", "left", "question"):
        table.add_column(col, overflow="fold")
    for a in found:
        left = f"{a.expires_at - now:.0f} s" if a.open(now) else "-"
        table.add_row(a.id, a.rule, a.state, _stamp(a.asked_at), left, a.question)
    Console().print(table)


def _row(a: Approval, now: float) -> dict[str, Any]:
    return {
        "id": a.id,
        "rule": a.rule,
        "state": a.state,
        "open": a.open(now),
        "question": a.question,
        "plan": a.plan,
        "asked_at": a.asked_at,
        "expires_at": a.expires_at,
        "default": a.default,
        "by": a.by,
        "reason": a.reason,
    }


def _answer(settings: Settings, approval_id: str, approve: bool, reason: str) -> Approval:
    try:
        k = key(approval_id)
    except DecodeError as exc:
        fail(UsageError(exc.detail))

    async def body() -> Approval:
        bus = await _connect(settings)
        try:
            kv = await bind_bucket(bus, APPROVAL_BUCKET)
            entry = await kv.get(k)
            if entry is None:
                raise ApprovalError(f"no approval {approval_id}")
            rec = answer(decode(entry.value), approve, bus.identity, reason, time.time())
            verb = "approve" if approve else "deny"
            await bus.audit(verb, {"approval": approval_id, "rule": rec.rule, "reason": reason})
            await kv.update(k, encode(rec), entry.revision)
            return rec
        except NoBucket:
            raise ApprovalError("no approvals stored yet (no master has asked)") from None
        except KeyConflict:
            raise ApprovalError(f"approval {approval_id} was answered meanwhile") from None
        except AnswerRefused as exc:
            raise ApprovalError(str(exc)) from None
        finally:
            await bus.close()

    return run(body())


def approve(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(metavar="ID", help="From hactl approvals")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audited)")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON")] = False,
) -> None:
    """Approve a pending decision: the reactor goes on with the plan it showed."""
    rec = _answer(settings_of(ctx), approval_id, True, reason)
    if as_json:
        print_json(_row(rec, time.time()))
    else:
        typer.echo(f"approved {rec.id} ({rec.rule}): {rec.question}")


def deny(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(metavar="ID", help="From hactl approvals")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why (audited; required)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON")] = False,
) -> None:
    """Deny a pending decision: the reactor does not take it (and says who said no)."""
    if not reason.strip():
        fail(UsageError("--reason: say why"))
    rec = _answer(settings_of(ctx), approval_id, False, reason.strip())
    if as_json:
        print_json(_row(rec, time.time()))
    else:
        typer.echo(f"denied {rec.id} ({rec.rule}): {rec.reason}")


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
