"""Galera and RabbitMQ beacon parsers on golden inputs captured from the real daemons.

The inputs were captured by ``golden/capture_galera.sh`` and ``golden/capture_rabbitmq.sh``
(MariaDB 10.11 + galera-4 26.4, RabbitMQ 3.10 with the management plugin).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hactl.minion.beacons.base import diff
from hactl.minion.beacons.galera import (
    GaleraBeacon,
    down_item,
    parse_grastate,
    parse_recovered,
    parse_status_tsv,
    status_item,
)
from hactl.minion.beacons.rabbitmq import (
    epmd_registered,
    epmd_request,
    majority,
    parse_amqp_start,
    parse_local_alarms,
    parse_nodes,
    since_partitioned,
)
from hactl.minion.executors.base import CommandRefused, ExecContext, RabbitSettings, validate_args
from hactl.minion.executors.galera import GALERA_BOOTSTRAP, GALERA_START, _check_position
from hactl.minion.executors.rabbitmq import forget_node

GOLDEN = Path(__file__).parent / "golden"
UUID = "fb16f3eb-e56e-11f1-aa8d-d6179edf788c"


def test_grastate_after_clean_stop() -> None:
    """A clean stop saves the real seqno and marks the last node safe to bootstrap."""
    g = parse_grastate((GOLDEN / "grastate_clean_stop.dat").read_text())
    assert g == {"uuid": UUID, "seqno": 4, "safe_to_bootstrap": True}


def test_grastate_after_crash() -> None:
    """After kill -9 the seqno is -1: the position must come from --wsrep-recover."""
    g = parse_grastate((GOLDEN / "grastate_crash.dat").read_text())
    assert g["uuid"] == UUID
    assert g["seqno"] == -1


def test_grastate_partial_and_garbage() -> None:
    """Missing or malformed fields come back as None instead of raising."""
    assert parse_grastate("# GALERA saved state\nversion: 2.1\nseqno: x\n") == {
        "uuid": None,
        "seqno": None,
        "safe_to_bootstrap": None,
    }
    assert parse_grastate("safe_to_bootstrap: 0\n")["safe_to_bootstrap"] is False


def test_recovered_position_from_real_log() -> None:
    """The uuid:seqno that mariadbd --wsrep-recover logged is found."""
    assert parse_recovered((GOLDEN / "wsrep_recover.log").read_text()) == (UUID, 6)
    assert parse_recovered("2026 [ERROR] InnoDB: cannot open\n") is None


def test_status_of_a_synced_primary_node() -> None:
    """A bootstrapped node reports Primary, Synced, ready, connected, size 1."""
    item = status_item(parse_status_tsv((GOLDEN / "wsrep_status_synced.tsv").read_text()))
    assert item["cluster_status"] == "Primary"
    assert item["local_state_comment"] == "Synced"
    assert item["local_state"] == 4
    assert (item["ready"], item["connected"], item["synced"]) == (True, True, True)
    assert item["cluster_size"] == 1
    assert item["cluster_state_uuid"] == UUID
    assert item["last_committed"] == 4


def test_status_of_a_disconnected_node() -> None:
    """A node cut from its cluster is not synced, not ready, size 0."""
    item = status_item(parse_status_tsv((GOLDEN / "wsrep_status_non_primary.tsv").read_text()))
    assert item["cluster_status"] == "Disconnected"
    assert item["synced"] is False
    assert (item["ready"], item["connected"], item["cluster_size"]) == (False, False, 0)


def test_node_going_down_is_one_event_with_position() -> None:
    """Synced -> stopped changes running/synced and brings the grastate position."""
    up = {"local": status_item(parse_status_tsv((GOLDEN / "wsrep_status_synced.tsv").read_text()))}
    down = {"local": down_item(parse_grastate((GOLDEN / "grastate_crash.dat").read_text()), "x")}
    changes = {(c.field, c.value, c.prev) for c in diff(up, down, GaleraBeacon.significant)}
    assert ("running", False, True) in changes
    assert ("synced", False, True) in changes
    assert ("seqno", -1, None) in changes


def test_amqp_start_frame_from_real_broker() -> None:
    """The broker's answer to the protocol header is recognised as Connection.Start."""
    assert parse_amqp_start((GOLDEN / "amqp_connection_start.bin").read_bytes())
    assert not parse_amqp_start(b"AMQP\x00\x00\x09\x01")
    assert not parse_amqp_start(b"")


def test_api_nodes_from_real_broker() -> None:
    """/api/nodes gives the member list, running members, no partitions, no alarms."""
    payload = json.loads((GOLDEN / "rabbitmq_api_nodes.json").read_text())
    item = parse_nodes(payload, "rabbit@rcap")
    assert item == {
        "members": ["rabbit@rcap"],
        "running_members": ["rabbit@rcap"],
        "partitions": [],
        "alarms": [],
        "local_listed": True,
    }


def test_api_nodes_before_first_stats() -> None:
    """Right after start the API omits partitions/alarms; still parsed, nothing invented."""
    payload = json.loads((GOLDEN / "rabbitmq_api_nodes_starting.json").read_text())
    assert "partitions" not in payload[0]
    assert parse_nodes(payload, "rabbit@rcap")["partitions"] == []


def test_api_nodes_member_down_partition_and_alarm() -> None:
    """A stopped member, a partition and an alarm each show up (derived from the real shape)."""
    payload = json.loads((GOLDEN / "rabbitmq_api_nodes.json").read_text())
    ctl1 = dict(payload[0], name="rabbit@ctl1", partitions=["rabbit@ctl3"], mem_alarm=True)
    ctl2 = dict(payload[0], name="rabbit@ctl2", running=False)
    item = parse_nodes([ctl1, ctl2], "rabbit@ctl1")
    assert item["running_members"] == ["rabbit@ctl1"]
    assert item["members"] == ["rabbit@ctl1", "rabbit@ctl2"]
    assert item["partitions"] == ["rabbit@ctl1|rabbit@ctl3"]
    assert item["alarms"] == ["rabbit@ctl1:mem_alarm"]
    with pytest.raises(ValueError, match="not a node list"):
        parse_nodes({"error": "not_authorised"}, "rabbit@ctl1")


def test_partitioned_since_counts_only_the_brokers_own_partitions() -> None:
    """The time a broker's own partition list became non-empty is kept while it stays so and
    cleared when it empties; another member's partition with it does not start it."""
    me, pairs = "rabbit@ctl2", ["rabbit@ctl2|rabbit@ctl1", "rabbit@ctl1|rabbit@ctl2"]
    assert since_partitioned(None, me, ["rabbit@ctl1|rabbit@ctl2"], 50.0) is None
    assert since_partitioned(None, me, pairs, 100.0) == 100.0
    assert since_partitioned(100.0, me, pairs, 130.0) == 100.0
    assert since_partitioned(100.0, me, [], 140.0) is None


def test_galera_commands_check_positions() -> None:
    """Bootstrap needs a well-formed uuid:seqno; start accepts none; junk is refused."""
    assert _check_position("galera.bootstrap", UUID, 13) == f"{UUID}:13"
    with pytest.raises(CommandRefused):
        _check_position("galera.bootstrap", "../../etc", 1)
    with pytest.raises(CommandRefused):
        validate_args(GALERA_BOOTSTRAP, {"uuid": UUID})
    assert validate_args(GALERA_START, {})["uuid"] == ""


@pytest.mark.parametrize(
    ("node", "why"),
    [
        ("rabbit@ctl1", "cannot forget itself"),
        ("rabbit@ctl2; rm -rf /", "bad node name"),
        ("-n", "bad node name"),
    ],
)
async def test_forget_node_refusals(node: str, why: str) -> None:
    """rabbitmq.forget_node refuses itself and malformed names before running anything."""
    ctx = ExecContext(
        "ctl1", rabbitmq=RabbitSettings(node="rabbit@ctl1", rabbitmqctl=("/bin/false",))
    )
    with pytest.raises(CommandRefused, match=why):
        await forget_node(ctx, {"node": node})
    with pytest.raises(CommandRefused, match="no rabbitmq section"):
        await forget_node(ExecContext("ctl1"), {"node": "rabbit@ctl2"})


@pytest.mark.parametrize("timeout", [1e9, 0, -5, float("nan"), float("inf")])
def test_a_caller_supplied_timeout_has_a_ceiling(timeout: float) -> None:
    """No request can hold a command slot for ever: timeouts outside 1-600 s are refused."""
    with pytest.raises(CommandRefused, match="timeout must be from 1 to 600"):
        validate_args(GALERA_START, {"timeout": timeout})
    assert validate_args(GALERA_START, {"timeout": 600})["timeout"] == 600


def test_local_alarms_check_of_a_real_broker() -> None:
    """/api/health/checks/local-alarms: 200 is no alarm of this broker; 503 names each
    (captured from a broker whose memory watermark was dropped); anything else is refused."""
    body = (GOLDEN / "rabbitmq_local_alarms_503.json").read_bytes()
    node = json.loads(body)["alarms"][0]["node"]
    assert parse_local_alarms(200, b'{"status":"ok"}') == []
    assert parse_local_alarms(503, body) == [f"{node}:memory"]
    with pytest.raises(ValueError, match="HTTP 401"):
        parse_local_alarms(401, b"{}")
    with pytest.raises(ValueError, match="without alarms"):
        parse_local_alarms(503, b'{"status":"failed"}')


def test_epmd_port_please2_request_and_answers() -> None:
    """PORT_PLEASE2_REQ is a 2-byte length, 'z' and the node's name; PORT2_RESP 'w' with
    result 0 is a registered node, any other result (or a short or foreign answer) is not."""
    assert epmd_request("rabbit") == b"\x00\x07zrabbit"
    assert epmd_registered(b"w\x00\x64\x88M\x00\x00\x06\x00\x06rabbit\x00\x00")
    assert not epmd_registered(b"w\x01")
    assert not epmd_registered(b"w")
    assert not epmd_registered(b"HTTP/1.0 400")


def test_majority_counts_the_broker_itself() -> None:
    """Two of three is a majority, one of three and two of four are not."""
    three = ["rabbit@ctl1", "rabbit@ctl2", "rabbit@ctl3"]
    assert majority(three, 2) and not majority(three, 1)
    assert not majority([*three, "rabbit@ctl4"], 2)
