"""The shipped state tree, rendered for the seeds' three controllers, matches reviewed files.

Regenerate after a reviewed template change:
``HACTL_UPDATE_GOLDEN=1 pytest tests/unit/test_states_golden.py``
(then read the git diff of tests/unit/golden/states/ before committing it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hactl.master.states.compile import compile_tree
from hactl.master.states.tree import load_tree
from tests.support.keystone_keys import ENV as KEYSTONE_ENV

ROOT = Path(__file__).resolve().parents[2]
STATES = ROOT / "states"
GOLDEN = Path(__file__).parent / "golden" / "states"
NODES = ("ctl1", "ctl2", "ctl3")
SECRET = "golden-stats-password"
#: a test-only certificate and key for the external VIP (hactl.auth.store.server_pem)
EXTERNAL_PEM = (Path(__file__).parent / "golden" / "external-tls.pem").read_text(encoding="utf-8")


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Plans for ctl1..ctl3 from the shipped tree and pillar (the stats password from env)."""
    monkeypatch.setenv("HACTL_HAPROXY_STATS_PASSWORD", SECRET)
    monkeypatch.setenv("HACTL_RABBITMQ_MONITOR_PASSWORD", "golden-monitor")
    monkeypatch.setenv("HACTL_RABBITMQ_OPENSTACK_PASSWORD", "golden-openstack")
    monkeypatch.setenv("HACTL_RABBITMQ_COOKIE", "goldencookie0123456789")
    for key, value in KEYSTONE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HACTL_HAPROXY_EXTERNAL_PEM", EXTERNAL_PEM)
    return dict(compile_tree(load_tree(STATES), list(NODES)))


def _golden_path(minion: str, path: str) -> Path:
    return GOLDEN / minion / path.lstrip("/")


@pytest.mark.parametrize("minion", NODES)
def test_rendered_files_match_golden(plans: dict[str, object], minion: str) -> None:
    """Every file.managed content equals its reviewed golden file, byte for byte."""
    files = plans[minion].files()  # type: ignore[attr-defined]
    assert files, "the shipped tree manages files"
    update = os.environ.get("HACTL_UPDATE_GOLDEN") == "1"
    for path, content in files.items():
        golden = _golden_path(minion, path)
        if update:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(content, encoding="utf-8")
        assert golden.is_file(), f"no golden file for {minion}:{path} (set HACTL_UPDATE_GOLDEN=1)"
        assert content == golden.read_text(encoding="utf-8"), f"{minion}:{path} differs"
    on_disk = {p for p in (GOLDEN / minion).rglob("*") if p.is_file()}
    assert on_disk == {_golden_path(minion, p) for p in files}, "stale golden files"


def test_plan_order_and_resources(plans: dict[str, object]) -> None:
    """Requisites come first: the sysctl before haproxy.cfg, each config before its service."""
    ids = [r.id for r in plans["ctl1"].resources]  # type: ignore[attr-defined]
    assert ids.index("ip_nonlocal_bind") < ids.index("haproxy_cfg") < ids.index("haproxy_service")
    assert ids.index("keepalived_conf") < ids.index("keepalived_service")
    assert set(ids) >= {"galera_cnf", "rabbitmq_conf", "rabbitmq_definitions", "sysctl_conf"}


def test_every_seed_service_is_balanced(plans: dict[str, object]) -> None:
    """Each OpenStack API of the seeds has a frontend on the VIP and three servers."""
    cfg = plans["ctl1"].files()["/etc/haproxy/haproxy.cfg"]  # type: ignore[attr-defined]
    ports = {5000, 35357, 9292, 9191, 8774, 8775, 6080, 9696, 8776, 8004, 8000, 8080, 80, 443}
    for port in ports:
        assert f"bind 192.168.47.100:{port}\n" in cfg, port
    assert cfg.count("server ctl2 192.168.47.12:") == len(ports) + 2  # + galera + rabbitmq
    galera = cfg.split("listen galera")[1].split("listen rabbitmq")[0]
    assert "server ctl1 192.168.47.11:3306\n" in galera  # the writer
    assert galera.count(" backup\n") == 2
    assert "agent-check" in galera and "on-marked-down shutdown-sessions" in galera
    assert "cookie SERVERID insert" in cfg.split("\nbackend be_horizon\n")[1].split("frontend")[0]


def test_keepalived_priorities_are_per_node(plans: dict[str, object]) -> None:
    """Each node's keepalived.conf carries its own unique priority for both VIPs."""
    for node, prio in (("ctl1", 150), ("ctl2", 100), ("ctl3", 50)):
        conf = plans[node].files()["/etc/keepalived/keepalived.conf"]  # type: ignore[attr-defined]
        assert conf.count(f"priority {prio}\n") == 2
        assert f"router_id {node}\n" in conf
        script = next(line for line in conf.splitlines() if line.strip().startswith("script "))
        assert "127.0.0.1:8405/healthz" in script  # the node's own loopback, not killall/pidof


def test_galera_is_formed_by_the_writer_and_joined_by_the_others(plans: dict[str, object]) -> None:
    """galera_member follows galera_cnf; only the writer (ctl1) may bootstrap; each node's
    peers are the other members' group ports."""
    for node, plan in plans.items():
        res = {r.id: r for r in plan.resources}  # type: ignore[attr-defined]
        ids = list(res)
        assert ids.index("galera_cnf") < ids.index("galera_member")
        member = res["galera_member"]
        assert member.args["bootstrap"] is (node == "ctl1")
        others = {"ctl1": "192.168.47.11", "ctl2": "192.168.47.12", "ctl3": "192.168.47.13"}
        want = sorted(f"{a}:4567" for n, a in others.items() if n != node)
        assert sorted(member.args["peers"]) == want


def test_rabbitmq_is_formed_by_the_seed_and_joined_by_the_others(plans: dict[str, object]) -> None:
    """rabbitmq_member follows the cookie and the config and precedes the broker's start;
    only the first broker by id is the seed; each node's peers are the other brokers' names."""
    for node, plan in plans.items():
        res = {r.id: r for r in plan.resources}  # type: ignore[attr-defined]
        ids = list(res)
        assert ids.index("rabbitmq_cookie") < ids.index("rabbitmq_member")
        assert ids.index("rabbitmq_member") < ids.index("rabbitmq_service")
        member = res["rabbitmq_member"]
        assert member.args["seed"] is (node == "ctl1")
        assert member.args["service"] == "rabbitmq-server"
        assert member.args["peers"] == [f"rabbit@{n}" for n in NODES if n != node]
