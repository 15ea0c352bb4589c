"""Push compiled plans to minions concurrently and collect what each resource did.

One job id for the whole run: ``hactl/job/<jid>/new`` is published first, each minion answers
the ``state.apply`` request (and publishes ``hactl/job/<jid>/ret/<id>`` itself). A minion that
does not answer within the timeout is reported as such; nobody is waited on forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hactl.bus import Bus
from hactl.errors import CommandError
from hactl.master.states.compile import Plan
from hactl.master.states.tree import redact
from hactl.wire.envelope import new_event
from hactl.wire.ids import new_id
from hactl.wire.tags import MASTER_ID


@dataclass(frozen=True, slots=True)
class MinionResult:
    """What one minion reported (or why it reported nothing)."""

    minion: str
    status: str  # ok | failed | no_answer | error
    resources: tuple[dict[str, Any], ...] = ()
    detail: str = ""
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        """Resources that changed (or would, with --test)."""
        return sum(1 for r in self.resources if r.get("changes"))

    @property
    def failed(self) -> int:
        """Resources that failed."""
        return sum(1 for r in self.resources if r.get("result") is False)


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """The whole job."""

    jid: str
    test: bool
    results: tuple[MinionResult, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Every targeted minion answered and every resource succeeded."""
        return all(r.status == "ok" for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``--json``)."""
        return {
            "jid": self.jid,
            "test": self.test,
            "ok": self.ok,
            "minions": {
                r.minion: {
                    "status": r.status,
                    "detail": r.detail,
                    "seconds": round(r.seconds, 3),
                    "changed": r.changed,
                    "failed": r.failed,
                    "resources": list(r.resources),
                }
                for r in self.results
            },
        }


async def _one(bus: Bus, jid: str, plan: Plan, test: bool, timeout: float) -> MinionResult:
    start = time.monotonic()
    args = {
        "plan": [r.wire() for r in plan.resources],
        "test": test,
        "redact": sorted(plan.secrets),
    }
    try:
        reply = await bus.request(
            plan.minion, "state.apply", args, timeout=timeout, jid=jid, sender=MASTER_ID
        )
    except CommandError as exc:
        status = "no_answer" if exc.kind in ("unanswered", "timed out") else "error"
        return MinionResult(
            plan.minion, status, detail=exc.detail, seconds=time.monotonic() - start
        )
    took = time.monotonic() - start
    if not reply.ok:
        detail = redact(f"{reply.error_type}: {reply.error_message}", plan.secrets)
        return MinionResult(plan.minion, "error", detail=detail, seconds=took)
    resources = tuple(reply.result.get("resources") or ())
    ok = bool(reply.result.get("result"))
    return MinionResult(plan.minion, "ok" if ok else "failed", resources, seconds=took)


async def apply_plans(
    bus: Bus,
    plans: dict[str, Plan],
    *,
    test: bool = False,
    timeout: float = 60.0,
    concurrency: int = 256,
    on_done: Callable[[MinionResult], None] | None = None,
) -> ApplyReport:
    """Send every plan (at most ``concurrency`` in flight) and gather the results."""
    jid = new_id()
    await bus.publish(
        new_event(
            f"hactl/job/{jid}/new",
            MASTER_ID,
            {"fun": "state.apply", "targets": sorted(plans), "test": test},
        )
    )
    gate = asyncio.Semaphore(concurrency)

    async def run(plan: Plan) -> MinionResult:
        async with gate:
            res = await _one(bus, jid, plan, test, timeout)
        if on_done is not None:
            on_done(res)
        return res

    results = await asyncio.gather(*(run(p) for p in plans.values()))
    return ApplyReport(jid, test, tuple(sorted(results, key=lambda r: r.minion)))
