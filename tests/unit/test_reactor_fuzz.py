"""No input poisons the reactor: hypothesis-generated beacon payloads of every beacon type and
garbage KV values go through the real view and engine with the shipped rules; nothing escapes,
and afterwards a legitimate event still gets its reaction (latency printed beside a clean
engine's, measured in the same run)."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hactl.master.reactor.convergence.desired import desired
from hactl.master.reactor.rules.engine import Engine
from hactl.master.reactor.view.cluster import ASPECTS
from hactl.wire.beacons import ITEM_FIELDS
from hactl.wire.envelope import decode, encode, new_event
from tests.support.membus import MemBus
from tests.unit.test_reactor_engine import NODES, SITE_RULES, engine_with, galera, runtime_calls

KINDS = sorted(ITEM_FIELDS)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.binary(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
# items shaped like the real ones (known item and field names) with hostile values, or no shape
FIELD_NAMES = st.sampled_from(sorted({f for fs in ITEM_FIELDS.values() for f in fs}))
ITEM = st.dictionaries(FIELD_NAMES | st.text(max_size=8), VALUES, max_size=6)
ITEM_NAMES = st.sampled_from(["local", "VI_INTERNAL", "galera/ctl2", "_haproxy", "_beacon"])
ITEMS = st.dictionaries(ITEM_NAMES | st.text(max_size=12), ITEM | VALUES, max_size=5) | VALUES
CHANGE = st.fixed_dictionaries(
    {"item": ITEM_NAMES | VALUES, "field": FIELD_NAMES | VALUES, "value": VALUES, "prev": VALUES}
)
PAYLOAD = st.fixed_dictionaries(
    {"items": ITEMS},
    optional={"changes": st.lists(CHANGE, max_size=3) | VALUES, "resync": VALUES},
) | st.dictionaries(st.text(max_size=8), VALUES, max_size=4)


def _wire(node: str, kind: str, data: dict[str, Any]) -> Any:
    """The event as the master would receive it (encoded and strictly decoded), or None when
    the wire layer already refuses it."""
    try:
        event = new_event(f"hactl/beacon/{node}/{kind}", node, data)
        return decode(encode(event), f"hactl.beacon.{node}.{kind}")
    except Exception:
        return None


async def _react(eng: Engine, bus: MemBus) -> float:
    """Seconds from a real `synced -> false` event to its first HAProxy command."""
    bus.requests.clear()
    start = time.perf_counter()
    await eng.handle(galera("ctl2", synced=False, prev=True, primary=False))
    for _ in range(1_000_000):  # the set_state runs are tasks: yield until the first call
        if runtime_calls(bus):
            break
        await asyncio.sleep(0)
    took = time.perf_counter() - start
    await eng.idle()
    assert sorted(c for c in runtime_calls(bus) if c[1] == "set_state") == [
        (n, "set_state", "galera", "ctl2/maint") for n in eng.facts()["haproxy_nodes"]
    ]
    return took


async def _drop_tasks(eng: Engine) -> None:
    """Cancel debounce timers and runs the garbage started; none may have died of an error."""
    tasks = list(eng._tasks)  # the engine's own task set
    for t in tasks:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results), results


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    node=st.sampled_from([*NODES, "ctl9"]),
    data=PAYLOAD,
    kv=st.lists(st.tuples(st.sampled_from(ASPECTS), VALUES), max_size=3),
)
def test_fuzzed_beacons_and_kv_values_never_escape(
    kind: str, node: str, data: dict[str, Any], kv: list[tuple[str, Any]]
) -> None:
    """Any payload of any beacon, and any KV value, leaves the engine working."""

    async def run() -> None:
        bus = MemBus()
        eng = await engine_with(bus, rules=SITE_RULES)
        for aspect, value in kv:  # as a (restarted) master loads the view from KV
            raw = msgpack.packb(value, use_bin_type=True)
            eng.view.set(node, aspect, msgpack.unpackb(raw, raw=False))
        event = _wire(node, kind, data)
        if event is not None:
            await eng.handle(event)
        desired(eng.view.nodes, eng.facts()["vrrp_health"])  # the reconciler's plan, too
        await _drop_tasks(eng)
        await _react(eng, bus)

    asyncio.run(run())


def test_vips_poison_regression_and_reaction_latency() -> None:
    """The named regression: vrrp `vips: [[1]]` (and 2,000 fuzz-like garbage events) then a
    real event reacts; its latency is printed beside a clean engine's (same run)."""

    async def run() -> tuple[list[float], list[float]]:
        clean_bus, dirty_bus = MemBus(), MemBus()
        clean = await engine_with(clean_bus, rules=SITE_RULES)
        dirty = await engine_with(dirty_bus, rules=SITE_RULES)
        poison = {
            "VI_INTERNAL": {"state": "MASTER", "priority": 150, "vips": [[1]], "vip_here": True}
        }
        await dirty.handle(new_event("hactl/beacon/ctl1/vrrp", "ctl1", {"items": poison}))
        dirty.view.set("ctl2", "vrrp", poison)  # the bad value read back from KV
        for i in range(2000):
            items = {f"be/s{i}": {"status": i, "weight": "x" * (i % 50)}}
            await dirty.handle(
                new_event(
                    f"hactl/beacon/ctl{1 + i % 3}/haproxy", f"ctl{1 + i % 3}", {"items": items}
                )
            )
        assert dirty.view.rejected.get("vrrp") == 2 and dirty.view.rejected.get("haproxy") == 2000
        base, after = [], []
        for _ in range(50):
            base.append(await _react(clean, clean_bus))
            after.append(await _react(dirty, dirty_bus))
            for eng in (clean, dirty):
                await eng.handle(galera("ctl2", synced=True, prev=False))
                await eng.idle()
        return base, after

    base, after = asyncio.run(run())

    def p99(xs: list[float]) -> float:
        return sorted(xs)[int(0.99 * (len(xs) - 1))] * 1000

    print(
        f"\nreaction to a real event (50 runs): clean engine p50 "
        f"{statistics.median(base) * 1000:.3f} ms p99 {p99(base):.3f} ms; after the poison "
        f"and 2,000 garbage events p50 {statistics.median(after) * 1000:.3f} ms "
        f"p99 {p99(after):.3f} ms"
    )
