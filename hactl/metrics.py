"""Prometheus metrics: the counters a daemon already keeps, served over HTTP.

Nothing is instrumented twice: a collector asks the daemon's own event loop for the same
snapshot ``hactl stats`` (the master) or the heartbeat grains (the minion) report, at scrape
time, and turns every number in it into a metric named by its path
(``hactl_master_reactor_fired_total``, ``hactl_minion_commands_total``). Each daemon declares
what each path is (:class:`Family`: a counter or a gauge, and the label names a map's keys
stand for: ``hactl_master_decisions_total{rule="galera-node-out",outcome="done"}``,
``hactl_minion_supervised_restarts_total{service="haproxy"}``); an undeclared map of numbers
is a gauge with a ``key`` label. Process metrics (RSS, CPU, open files) come with it.
Off unless an address is given; the HTTP server binds only that address (it has no
authentication: loopback or a management network, docs/security.md) and runs in its own
thread, so a slow scraper never slows the loop.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hactl.errors import UsageError

Snapshot = Callable[[], Awaitable[Mapping[str, Any]]]
_NAME = re.compile(r"[^a-zA-Z0-9_]")


def _name(*parts: str) -> str:
    return "_".join(_NAME.sub("_", p).strip("_").lower() for p in parts if p)


#: seconds: from a cheap local action to a Galera rejoin
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Hist:
    """A histogram kept by the daemon itself (per ``key``: a rule, a fault class), served as
    a Prometheus histogram; plain numbers, so the event loop owns it without locks."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self.counts: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def observe(self, key: str, value: float) -> None:
        """Count ``value`` (seconds) for ``key``."""
        counts = self.counts.setdefault(key, [0] * (len(self.buckets) + 1))
        counts[next((i for i, b in enumerate(self.buckets) if value <= b), -1)] += 1
        self.sums[key] = self.sums.get(key, 0.0) + value

    def copy(self) -> Hist:
        """A snapshot (taken on the loop, read by the scrape thread)."""
        out = Hist(self.buckets)
        out.counts = {k: list(v) for k, v in self.counts.items()}
        out.sums = dict(self.sums)
        return out


@dataclass(frozen=True, slots=True)
class Family:
    """How one path of a snapshot is served: a ``counter`` (``_total``), a ``gauge``, a
    ``record`` (a map whose numbers are metrics of their own), or ``skip``; for a map of
    numbers or a histogram, the label names its keys stand for (a key ``rule/outcome`` fills
    two labels)."""

    kind: Literal["counter", "gauge", "record", "skip"] = "gauge"
    labels: tuple[str, ...] = ("key",)


GAUGE = Family()
COUNTER = Family("counter")
SKIP = Family("skip")
Types = Mapping[str, Family]


def _family(types: Types, path: str) -> Family:
    """The declared family of ``path``, or its parent's ``.*`` entry, or a keyed gauge."""
    parent = path.rpartition(".")[0]
    return types.get(path) or types.get(f"{parent}.*" if parent else "*") or GAUGE


def _labels(key: str, names: tuple[str, ...]) -> list[str]:
    parts = key.split("/", len(names) - 1)
    return parts + [""] * (len(names) - len(parts))


def _histogram(name: str, hist: Hist, labels: tuple[str, ...]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, f"{name} (seconds)", labels=list(labels))
    for key, counts in sorted(hist.counts.items()):
        running, points = 0, []
        for bound, n in zip(hist.buckets, counts, strict=False):
            running += n
            points.append((repr(bound), float(running)))
        points.append(("+Inf", float(running + counts[-1])))
        family.add_metric(_labels(key, labels), points, sum_value=hist.sums.get(key, 0.0))
    return family


def flatten(
    prefix: str, data: Mapping[str, Any], types: Types | None = None, path: str = ""
) -> Iterator[Metric]:
    """Every number in ``data`` as the metric its path declares in ``types``; a mapping whose
    values are all numbers is one metric with labels; a :class:`Hist` is a histogram."""
    types = types or {}
    for key, value in sorted(data.items()):
        where = f"{path}.{key}" if path else str(key)
        fam = _family(types, where)
        if fam.kind == "skip":
            continue
        name = _name(prefix, str(key))
        if isinstance(value, Hist):
            yield _histogram(name, value, fam.labels)
        elif isinstance(value, int | float):  # a bool is an int: 1.0 / 0.0
            if fam.kind == "counter":
                yield CounterMetricFamily(name, f"{prefix} {key}", value=float(value))
            else:
                yield GaugeMetricFamily(name, f"{prefix} {key}", value=float(value))
        elif isinstance(value, Mapping):
            leaves = list(value.values())
            # counts by name (an empty map too: the metric exists before its first count);
            # a map holding a bool, or declared a record, is named fields (one metric each)
            numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in leaves)
            if not numbers or fam.kind == "record":
                yield from flatten(name, value, types, where)
                continue
            cls = CounterMetricFamily if fam.kind == "counter" else GaugeMetricFamily
            family = cls(name, f"{prefix} {key} by {', '.join(fam.labels)}", labels=fam.labels)
            for k, v in sorted(value.items()):
                family.add_metric(_labels(str(k), fam.labels), float(v))
            yield family


class LoopCollector(Collector):
    """Collects ``snapshot()`` run on the daemon's event loop (thread-safe)."""

    def __init__(
        self,
        prefix: str,
        snapshot: Snapshot,
        loop: asyncio.AbstractEventLoop,
        types: Types | None = None,
    ) -> None:
        self.prefix = prefix
        self.snapshot = snapshot
        self.loop = loop
        self.types = types or {}

    def collect(self) -> Iterator[Metric]:
        """Ask the loop for a snapshot (2 s at most: a hung loop shows as an ``up`` of 0)."""
        try:
            data = asyncio.run_coroutine_threadsafe(self._take(), self.loop).result(timeout=2.0)
        except Exception:  # a scrape must answer; "up 0" says the loop did not
            yield GaugeMetricFamily(_name(self.prefix, "up"), "the loop answered", value=0.0)
            return
        yield GaugeMetricFamily(_name(self.prefix, "up"), "the loop answered", value=1.0)
        yield from flatten(self.prefix, data, self.types)

    async def _take(self) -> Mapping[str, Any]:
        return await self.snapshot()


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` (``127.0.0.1:9464``) -> (host, port); UsageError when it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"metrics address {text!r}: use host:port, e.g. 127.0.0.1:9464")
    return host.strip("[]"), int(port)


def serve(
    address: str, prefix: str, snapshot: Snapshot, types: Types | None = None
) -> CollectorRegistry:
    """Start the metrics endpoint on ``address`` for the running loop's ``snapshot``, each
    path served as ``types`` declares it."""
    host, port = parse_address(address)
    registry = CollectorRegistry()
    registry.register(LoopCollector(prefix, snapshot, asyncio.get_running_loop(), types))
    registry.register(ProcessCollector(namespace=prefix, registry=None))
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise UsageError(f"metrics on {address}: {exc.strerror or exc}") from None
    return registry
