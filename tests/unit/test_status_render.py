"""`hactl status` at a glance: healthy API backends fold into one row, anomalies are named."""

from __future__ import annotations

from rich.console import Console

from hactl.cli.status import _tables
from tests.unit.test_reconciler import admin, ev, healthy_view


def _render(view: object, full: bool = False) -> str:
    console = Console(record=True, width=120)
    _tables(console, view.facts(), full)  # type: ignore[attr-defined]
    return console.export_text()


def test_healthy_cluster_is_a_few_lines_and_a_drained_server_is_named() -> None:
    """All UP: the API backends are one row; a server in MAINT on one HAProxy shows its
    backend with the count per status; a yielding node is marked; --full lists every row."""
    view = healthy_view()
    text = _render(view)
    assert "1 API backends" in text and "every server UP" in text
    items = dict(view.nodes["ctl1"]["haproxy"])
    items["be_nova_api/ctl2"] = {**items["be_nova_api/ctl2"], "status": "MAINT"}
    view.update(ev("ctl1", "haproxy", items))
    admin(view, "ctl1", "be_nova_api", "ctl2", "maint")
    item = {"vips": ["v"], "state": "FAULT", "priority": 100, "vip_here": False, "yielded": True}
    view.update(ev("ctl2", "vrrp", {"VI_INTERNAL": item}))
    text = _render(view)
    assert "ctl2 MAINT x1/UP x2" in text and "API backends" not in text
    assert "(yielding)" in text
    assert _render(view, full=True).count("be_nova_api/") == 9


def test_maintenance_and_alerts_come_first() -> None:
    """Active windows and recent alerts are printed above the tables, with time left / ago."""
    import time

    from hactl.cli.status import _top
    from hactl.wire.envelope import new_event
    from hactl.wire.maint import Maintenance

    console = Console(record=True, width=120)
    window = Maintenance("ctl2", "galera", "disk swap", until=time.time() + 600)
    alert = new_event("hactl/event/alert/split-brain", "master", {"vips": ["10.0.0.10"]})
    _top(console, [window], [alert])
    text = console.export_text()
    assert "maintenance ctl2/galera: disk swap (10 min left)" in text
    assert "alert split-brain (0 s ago): vips=['10.0.0.10']" in text


def test_singletons_show_holder_running_and_failures() -> None:
    """The singletons table joins the lease records (holder, since) with the nodes' singleton
    beacons (running, failures, the last thing that happened); a bad record is reported."""
    from hactl.cli.singleton import rows
    from hactl.cli.status import _singletons
    from hactl.wire.singleton import LeaseRecord, SingletonSpec, encode_lease, encode_spec

    spec = SingletonSpec("sched", "sched", ("ctl1", "ctl2"))
    values = {
        "singleton-spec.sched": encode_spec(spec),
        "singleton.sched": encode_lease(LeaseRecord("sched", "ctl2", 1.0, "master")),
        "singleton.bad": b"{nope",
    }
    found, problems = rows(values)
    assert [(r["name"], r["holder"]) for r in found] == [("sched", "ctl2")]
    assert problems and problems[0].startswith("singleton.bad")
    nodes = {
        "ctl1": {"singleton": {"sched": {"running": False, "failures": 2, "last": "failed"}}},
        "ctl2": {"singleton": {"sched": {"running": True, "failures": 0, "last": "started"}}},
    }
    console = Console(record=True, width=160)
    _singletons(console, found, nodes)
    text = console.export_text()
    assert "ctl2" in text and "yes" in text and "ctl1 2" in text and "started" in text
