"""The health agent's answers and its configuration (no sockets)."""

from __future__ import annotations

import pytest

from hactl.errors import ConfigError
from hactl.minion.config import parse_config
from hactl.minion.health_agent import AgentPolicy, verdict

SYNCED = {"local": {"running": True, "synced": True, "local_state_comment": "Synced"}}


@pytest.mark.parametrize(
    ("snapshot", "age", "line"),
    [
        (SYNCED, 0.2, "up\n"),
        (None, 0.0, "down #no Galera report yet\n"),
        (SYNCED, 5.0, "down #Galera report 5.0s old (probe hung?)\n"),
        ({"local": {"running": False, "synced": False}}, 0.1, "down #mariadbd not running\n"),
        (
            {"local": {"running": True, "synced": False, "local_state_comment": "Donor/Desynced"}},
            0.1,
            "down #not Synced (Donor/Desynced)\n",
        ),
        (
            {"local": {"running": True, "synced": False, "cluster_status": "non-Primary\nmaint"}},
            0.1,
            "down #not Synced (non-Primarymaint)\n",
        ),
        ({"_beacon": {"error": "x"}}, 0.1, "down #no Galera facts\n"),
    ],
)
def test_verdict_speaks_only_operational_words(snapshot: object, age: float, line: str) -> None:
    """up only for a fresh Synced report; otherwise down with a reason on one line -- never
    ready/drain/maint (the reconciler's administrative words), never a second line."""
    got = verdict(snapshot, age, 3.0)  # type: ignore[arg-type]  # hostile shapes on purpose
    assert got == line
    first = got.split("#")[0].split()
    assert first in (["up"], ["down"]) and got.count("\n") == 1


def test_policy_refuses_any_address_and_bad_ports() -> None:
    """Bound to the node's own address: 0.0.0.0, a name or a bad port is refused."""
    assert AgentPolicy.parse({"address": "10.0.0.11"}).port == 9200
    for raw in ({"address": "0.0.0.0"}, {"address": "ctl1"}, {"address": "10.0.0.1", "port": 0}):
        with pytest.raises(Exception, match="health_agent"):
            AgentPolicy.parse(raw)


def test_minion_yaml_needs_the_galera_beacon_for_the_agent() -> None:
    """health_agent without beacons.galera is a config error naming the key."""
    with pytest.raises(ConfigError, match="health_agent"):
        parse_config("id: ctl1\nhealth_agent: {address: 10.0.0.11}\n", "m.yaml")
    cfg = parse_config(
        "id: ctl1\nhealth_agent: {address: 10.0.0.11, max_age: 2}\n"
        "beacons: {galera: {socket: /run/mysqld/mysqld.sock, datadir: /var/lib/mysql}}\n",
        "m.yaml",
    )
    assert cfg.health_agent == AgentPolicy("10.0.0.11", 9200, 2.0)
