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

from hactl.auth.perms import SINGLETON_BUCKET
from hactl.bus import Bus, NoBucket, bind_bucket
from hactl.errors import BusError, CommandError, ConfigError
from hactl.master.states.compile import Plan
from hactl.master.states.tree import redact
from hactl.wire.envelope import new_event
from hactl.wire.ids import new_id
from hactl.wire.singleton import FIELDS, SPEC_PREFIX, SingletonSpec, encode_spec, spec_key
from hactl.wire.tags import MASTER_ID, job_tag


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
            job_tag(jid),
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


FIELD_NAMES = frozenset(f.name for f in FIELDS)


def singleton_specs(plans: dict[str, Plan]) -> dict[str, SingletonSpec]:
    """The singletons the plans declare, by name; ConfigError when two nodes' plans declare
    one differently (the master must place it by one spec)."""
    out: dict[str, SingletonSpec] = {}
    for minion, plan in sorted(plans.items()):
        for r in plan.resources:
            if r.type != "singleton.running":
                continue
            spec = SingletonSpec.from_args({k: v for k, v in r.args.items() if k in FIELD_NAMES})
            if spec.name in out and out[spec.name] != spec:
                raise ConfigError(
                    f"singleton {spec.name!r} is declared differently for {minion} than for "
                    "another node: one spec per singleton"
                )
            out[spec.name] = spec
    return out


async def publish_singletons(
    bus: Bus, specs: dict[str, SingletonSpec], *, whole_tree: bool
) -> list[str]:
    """Write each spec where the masters read it (KV ``HACTL_SINGLETONS``); with the whole
    tree applied, delete the specs it no longer declares (their copies stop: no master
    grants them any more). What changed, one line each."""
    try:  # the masters create it (with their replica count); apply never does
        kv = await bind_bucket(bus, SINGLETON_BUCKET)
    except NoBucket:
        if not specs:
            return []
        raise BusError(
            bus.url,
            f"no KV bucket {SINGLETON_BUCKET} yet: start a master before applying singletons",
        ) from None
    said: list[str] = []
    for name, spec in sorted(specs.items()):
        key, value = spec_key(name), encode_spec(spec)
        old = await bus.read_key(SINGLETON_BUCKET, key)
        if old != value:
            await kv.put(key, value)
            said.append(f"singleton {name}: spec {'updated' if old else 'added'}")
    if whole_tree:
        live = await bus.read_bucket(SINGLETON_BUCKET)
        for key in sorted(live):
            if key.startswith(SPEC_PREFIX + ".") and key.split(".", 1)[1] not in specs:
                await kv.delete(key)
                said.append(f"singleton {key.split('.', 1)[1]}: removed from the state tree")
    return said
