"""Every beacon's real output, from inputs captured from the real daemons, satisfies the beacon
contract the master's view enforces (hactl/wire/beacons.py): the two cannot drift apart."""

from __future__ import annotations

import json
from pathlib import Path

from hactl.minion.beacons import REGISTRY
from hactl.minion.beacons.galera import down_item, parse_grastate, parse_status_tsv, status_item
from hactl.minion.beacons.haproxy import parse_show_stat
from hactl.minion.beacons.rabbitmq import parse_nodes
from hactl.minion.beacons.vrrp import agreement
from hactl.minion.singleton import SingletonBeacon
from hactl.minion.supervisor import SupervisorBeacon
from hactl.wire.beacons import ITEM_FIELDS, check_items

GOLDEN = Path(__file__).parent / "golden"


def test_the_contract_covers_every_beacon() -> None:
    """A beacon without a contract could not reach the view."""
    assert set(ITEM_FIELDS) == {*REGISTRY, SupervisorBeacon.name, SingletonBeacon.name}


def test_haproxy_items_from_a_real_show_stat() -> None:
    """HAProxy 2.6's `show stat` items, plus the daemon status entry."""
    items = parse_show_stat((GOLDEN / "haproxy_show_stat.csv").read_text())
    items["_haproxy"] = {"running": True, "error": ""}
    assert check_items("haproxy", items) == ""


def test_galera_items_running_and_down() -> None:
    """The running item from wsrep status, the down item from a crashed grastate."""
    for tsv in ("wsrep_status_synced.tsv", "wsrep_status_non_primary.tsv"):
        item = status_item(parse_status_tsv((GOLDEN / tsv).read_text()))
        assert check_items("galera", {"local": item}) == ""
    g = parse_grastate((GOLDEN / "grastate_crash.dat").read_text())
    assert check_items("galera", {"local": down_item(g, "connect refused")}) == ""
    assert check_items("galera", {"local": down_item(None, "no datadir")}) == ""


def test_rabbitmq_items_with_and_without_the_api() -> None:
    """The broker item with the management API's node list, and with the API down."""
    nodes = json.loads((GOLDEN / "rabbitmq_api_nodes.json").read_text())
    first = nodes[0]["name"]
    item = {
        "node": first,
        "running": True,
        "detail": "ok",
        **parse_nodes(nodes, first),
        "api": True,
        "local_alarms": [f"{first}:memory"],
    }
    assert check_items("rabbitmq", {"local": item}) == ""
    down = {
        "node": first,
        "running": False,
        "detail": "refused",
        "api": False,
        "api_detail": "OSError",
        "members": None,
        "running_members": None,
        "partitions": None,
        "alarms": None,
    }
    assert check_items("rabbitmq", {"local": down}) == ""


def test_vrrp_and_service_items() -> None:
    """The vrrp item as the beacon builds it, with keepalived's error entry; a service item."""
    vips = ["10.99.0.10"]
    item = {
        "state": "MASTER",
        "priority": 150,
        "since": 1.5,
        "vips": vips,
        "vip_here": True,
        "agreement": agreement("MASTER", vips, {"10.99.0.10"}),
    }
    unknown = {
        "state": "UNKNOWN",
        "priority": None,
        "since": None,
        "vips": [],
        "vip_here": False,
        "agreement": "ok",
    }
    snap = {"VI_INTERNAL": item, "VI_X": unknown, "_keepalived": {"error": "fifo"}}
    assert check_items("vrrp", snap) == ""
    svc = {"keystone": {"url": "http://10.99.0.10:5000/", "up": False, "detail": "timeout"}}
    assert check_items("service", {**svc, "_beacon": {"error": "x"}}) == ""
