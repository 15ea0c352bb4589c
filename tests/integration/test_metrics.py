"""Prometheus metrics of a real master (embedded nats-server, auth and TLS on) and the
embedded server's own monitoring, both on loopback only."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from hactl.data import reactors_dir
from tests.integration.daemons import free_port
from tests.integration.procs import Proc, run_cli

ROOT = Path(__file__).resolve().parents[2]


def _get(url: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_master_serves_its_counters_and_the_server_its_monitoring(tmp_path: Path) -> None:
    """--metrics: the master's `hactl stats` counters as typed Prometheus metrics (the loop
    answered, events by kind, decisions by rule and outcome, process RSS) that the Grafana
    board's queries name; --nats-monitor: nats-server's /healthz answers."""
    port, mon = free_port(), free_port()
    base = ["--data-dir", str(tmp_path), "--log-format", "json"]
    master = Proc(
        [
            *base,
            "master",
            "--reactors",
            str(reactors_dir()),
            "--port",
            "-1",
            "--metrics",
            f"127.0.0.1:{port}",
            "--nats-monitor",
            f"127.0.0.1:{mon}",
        ]
    )
    try:
        assert run_cli([*base, "ping", "--wait", "20"]).returncode == 0, master.stderr_text()
        fired = run_cli([*base, "fire", "hactl/event/metrics-test", "x=1"])
        assert fired.returncode == 0, fired.stderr
        text = _get(f"http://127.0.0.1:{port}/metrics")
        names = {f.name for f in text_string_to_metric_families(text)}  # it parses
        assert {"hactl_master_up", "hactl_master_events", "hactl_master_uptime_s"} <= names
        assert "hactl_master_up 1.0" in text
        board = json.loads((ROOT / "docs/grafana/hactl.json").read_text())
        exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
        wanted = {
            re.sub(r"_(bucket|sum|count|total)$", "", n)
            for n in re.findall(r"hactl_master_[a-z_]+", exprs)
        }
        assert wanted <= names, (
            f"the dashboard asks for what the master does not serve: {wanted - names}"
        )
        assert "# TYPE hactl_master_decisions_total counter" in text  # from the start
        assert "# TYPE hactl_master_events_total counter" in text
        assert "hactl_master_process_resident_memory_bytes" in text
        assert "hactl_master_stream_messages" in text
        assert '"status": "ok"' in _get(f"http://127.0.0.1:{mon}/healthz").replace(':"', ': "')
    finally:
        master.stop()
    assert master.wait(10) == 0
