"""A server this node's HAProxy has just marked DOWN: its direct clients here are ended, by
its exact address and port, only on the transition, only for the listed backends, never for
an administrative MAINT or DRAIN."""

from __future__ import annotations

from typing import Any

import pytest

from hactl.minion.beacons import context
from hactl.minion.server_release import DownServer, kill_argv, went_down
from hactl.schema import SchemaError

pytestmark = pytest.mark.unit


def _item(backend: str, server: str, status: str, addr: str = "") -> dict[str, Any]:
    return {"backend": backend, "server": server, "status": status, "addr": addr}


def _snap(**statuses: str) -> dict[str, dict[str, Any]]:
    addrs = {"ctl1": "10.0.0.11:5672", "ctl2": "10.0.0.12:5672", "BACKEND": ""}
    return {f"rabbitmq/{s}": _item("rabbitmq", s, st, addrs[s]) for s, st in statuses.items()}


def test_only_a_transition_to_down_of_a_listed_backend_counts() -> None:
    """UP -> DOWN is a release; DOWN -> DOWN, UP -> MAINT/DRAIN, the first poll and other
    backends are not."""
    before = _snap(ctl1="UP", ctl2="DOWN", BACKEND="UP")
    after = _snap(ctl1="DOWN", ctl2="DOWN", BACKEND="DOWN")
    assert went_down(before, after, ["rabbitmq"]) == [
        DownServer("rabbitmq/ctl1", "10.0.0.11", 5672)
    ]
    assert went_down(None, after, ["rabbitmq"]) == []
    assert went_down(before, after, ["galera"]) == []
    assert went_down(before, _snap(ctl1="MAINT", ctl2="DOWN"), ["rabbitmq"]) == []
    assert went_down(before, _snap(ctl1="DRAIN", ctl2="UP"), ["rabbitmq"]) == []


def test_an_unreadable_address_ends_nothing_and_ipv6_is_bracketed() -> None:
    """No address, a name, no port: skipped. An IPv6 server is matched as ``ss`` spells it."""
    before = {"b/s": _item("b", "s", "UP")}
    for addr in ("", "ctl1:5672", "10.0.0.11", "10.0.0.11:amqp"):
        assert went_down(before, {"b/s": _item("b", "s", "DOWN", addr)}, ["b"]) == []
    (v6,) = went_down(before, {"b/s": _item("b", "s", "DOWN", "[fd00::11]:5671")}, ["b"])
    assert kill_argv(v6)[-6:] == ["established", "dst", "[fd00::11]", "dport", "=", ":5671"]


def test_the_kill_matches_exactly_that_address_and_port() -> None:
    """``ss -K`` of established sockets to that destination address and port, nothing else."""
    argv = kill_argv(DownServer("rabbitmq/ctl1", "10.0.0.11", 5672))
    assert argv == [
        "ss", "-K", "-H", "-t", "-n", "state", "established",
        "dst", "10.0.0.11", "dport", "=", ":5672",
    ]  # fmt: skip


def test_release_down_takes_a_list_of_backend_names() -> None:
    """minion.yaml's option is checked when it loads: a list of names, nothing else."""
    opts = context("ctl1", "haproxy", {"socket": "/run/h.sock"}).options
    assert opts["release_down"] == []
    ok = {"socket": "/run/h.sock", "release_down": ["rabbitmq"]}
    assert context("ctl1", "haproxy", ok).options["release_down"] == ["rabbitmq"]
    with pytest.raises(SchemaError, match="release_down must be a list of str"):
        context("ctl1", "haproxy", {"socket": "/s", "release_down": [{"a": 1}]})
    with pytest.raises(SchemaError, match="release_down must be list"):
        context("ctl1", "haproxy", {"socket": "/s", "release_down": "rabbitmq"})
