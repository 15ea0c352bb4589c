"""The services' vhost (pillar clients.vhost): the definitions make it beside the existing
ones, with every user's permissions and the quorum policy, and the clients' transport_url
names it; the brokers import a changed definitions file (rabbitmq_definitions_loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hactl.master.states.compile import compile_tree
from hactl.master.states.tree import load_tree
from tests.support.shipped_tree import shipped_tree

DEFS, CLIENTS = "/etc/rabbitmq/definitions.json", "/etc/hactl/openstack-clients.conf"


@pytest.fixture
def tree_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped tree, its secrets in the environment."""
    return shipped_tree(tmp_path, monkeypatch)


def test_a_new_vhost_is_defined_with_permissions_and_policy(tree_dir: Path) -> None:
    """clients.vhost openstack: definitions hold '/' and 'openstack', each user on each, the
    quorum policy on each; transport_url ends in /openstack."""
    (tree_dir.parent / "x.yaml").write_text("clients: {vhost: openstack}\n")
    plan = compile_tree(load_tree(tree_dir, [tree_dir.parent / "x.yaml"]), ["ctl1"])["ctl1"]
    defs = json.loads(plan.files()[DEFS])
    assert [v["name"] for v in defs["vhosts"]] == ["/", "openstack"]
    users = {u["name"] for u in defs["users"]}
    assert {(p["user"], p["vhost"]) for p in defs["permissions"]} == {
        (u, v) for u in users for v in ("/", "openstack")
    }
    assert {p["vhost"] for p in defs["policies"]} == {"/", "openstack"}
    assert all(p["apply-to"] == "quorum_queues" for p in defs["policies"])
    clients = plan.files()[CLIENTS]
    assert clients.count(":5672") == 3 and "192.168.47.13:5672/openstack\n" in clients
    res = {r.id: r for r in plan.resources}
    loaded = res["rabbitmq_definitions_loaded"]
    assert loaded.type == "rabbitmq.definitions" and loaded.args["path"] == DEFS
    assert list(loaded.watch) == ["rabbitmq_definitions"]


def test_the_default_vhost_keeps_the_url_and_one_vhost(tree_dir: Path) -> None:
    """Without clients.vhost: one vhost '/', transport_url ending in '/'."""
    plan = compile_tree(load_tree(tree_dir), ["ctl1"])["ctl1"]
    defs = json.loads(plan.files()[DEFS])
    assert [v["name"] for v in defs["vhosts"]] == ["/"]
    assert "192.168.47.13:5672/\n" in plan.files()[CLIENTS]
