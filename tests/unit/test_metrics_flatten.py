"""Snapshots become Prometheus gauges by path; maps of counts get a key label."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from hactl.auth.client import ClientAuth
from hactl.metrics import flatten
from hactl.minion.agent import Minion
from hactl.minion.config import parse_config


def _text(prefix: str, data: dict[str, object]) -> str:
    class One:
        def collect(self) -> object:
            return flatten(prefix, data)

    registry = CollectorRegistry()
    registry.register(One())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def test_numbers_by_path_and_count_maps_by_label() -> None:
    """Nested numbers are named by their path; {kind: n} is one metric with key labels;
    strings are left out."""
    text = _text(
        "hactl_master",
        {
            "uptime_s": 3.5,
            "reactor": {"fired": 2, "observe": False},
            "events": {"beacon": 7},
            "version": "0.1",
        },
    )
    assert "hactl_master_uptime_s 3.5" in text
    assert "hactl_master_reactor_fired 2.0" in text and "hactl_master_reactor_observe 0.0" in text
    assert 'hactl_master_events{key="beacon"} 7.0' in text
    assert "version" not in text


async def test_minion_snapshot_has_its_outbox_and_yields() -> None:
    """The minion's metrics: outbox queued/dropped/sent, commands, yield time left."""
    cfg = parse_config("id: m1\nvrrp: {track_dir: /tmp/hactl-m1, instances: [VI_1]}\n", "m")
    minion = Minion(cfg, "nats://127.0.0.1:1", ClientAuth(Path("/nonexistent/creds.nk")))
    text = _text("hactl_minion", await minion.metrics())
    assert 'hactl_minion_outbox{key="dropped"} 0.0' in text and "hactl_minion_commands 0.0" in text
    assert 'hactl_minion_yield_seconds_left{key="VI_1"} 0.0' in text


def test_histograms_parse_back_with_prometheus_parser() -> None:
    """A Hist is served as a Prometheus histogram (cumulative buckets, +Inf, sum, count) that
    prometheus-client's own parser reads back."""
    from prometheus_client.parser import text_string_to_metric_families

    from hactl.metrics import Hist

    hist = Hist((0.1, 1.0))
    for v in (0.05, 0.5, 0.7, 5.0):
        hist.observe("galera_maint", v)
    text = _text("hactl_master", {"repair_seconds": hist})
    [family] = list(text_string_to_metric_families(text))
    assert family.name == "hactl_master_repair_seconds" and family.type == "histogram"
    got = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert got[("hactl_master_repair_seconds_bucket", "0.1")] == 1
    assert got[("hactl_master_repair_seconds_bucket", "1.0")] == 3
    assert got[("hactl_master_repair_seconds_bucket", "+Inf")] == 4
    assert got[("hactl_master_repair_seconds_count", None)] == 4
    assert abs(got[("hactl_master_repair_seconds_sum", None)] - 6.25) < 1e-9
