"""Snapshots become Prometheus metrics by path, typed as each daemon declares them: counters
with ``_total`` and real label names, gauges; an undeclared map of counts gets a key label."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from hactl.auth.client import ClientAuth
from hactl.master.hub import METRICS
from hactl.metrics import Types, flatten
from hactl.minion.agent import Minion
from hactl.minion.config import parse_config


def _text(prefix: str, data: dict[str, object], types: Types | None = None) -> str:
    class One:
        def collect(self) -> object:
            return flatten(prefix, data, types)

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
    text = _text("hactl_minion", await minion.metrics(), Minion.METRICS)
    assert "hactl_minion_outbox_dropped_total 0.0" in text
    assert "hactl_minion_outbox_queued 0.0" in text and "hactl_minion_commands_total 0.0" in text
    assert 'hactl_minion_yield_seconds_left{instance="VI_1"} 0.0' in text


def test_the_master_declares_counters_with_real_labels() -> None:
    """Decisions are a counter by rule and outcome, events by kind, the view's holders a
    gauge by vip and node; sums Prometheus can make are not served twice; histograms by
    rule and action."""
    from hactl.metrics import Hist

    hist = Hist((0.1,))
    hist.observe("galera-node-out/haproxy.set_state", 0.05)
    snapshot = {
        "events": {"beacon": 7},
        "events_total": 7,
        "decisions": {"galera-node-out/done": 3},
        "reactor": {"fired": 2, "rules": 9, "observe": False},
        "view": {"vip_holder": {"10.0.0.10/ctl1": 1}, "minions_lost": 0},
        "action_seconds": hist,
    }
    text = _text("hactl_master", snapshot, METRICS)
    assert "# TYPE hactl_master_decisions_total counter" in text
    assert 'hactl_master_decisions_total{outcome="done",rule="galera-node-out"} 3.0' in text
    assert 'hactl_master_events_total{kind="beacon"} 7.0' in text
    assert (
        "hactl_master_reactor_fired_total 2.0" in text and "hactl_master_reactor_rules 9.0" in text
    )
    assert 'hactl_master_view_vip_holder{node="ctl1",vip="10.0.0.10"} 1.0' in text
    assert "# TYPE hactl_master_view_minions_lost gauge" in text
    assert text.count("hactl_master_events_total") == 3  # HELP, TYPE, one sample: no sum
    assert 'action="haproxy.set_state",le="0.1",rule="galera-node-out"' in text


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
