"""Beacon parsers on golden inputs captured from the real daemons, and the change diff."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hactl.minion.beacons import context
from hactl.minion.beacons.base import diff, event_data
from hactl.minion.beacons.haproxy import normalize_status, parse_servers_state, parse_show_stat
from hactl.minion.beacons.vrrp import (
    Notify,
    VrrpBeacon,
    agreement,
    parse_ip_addr_json,
    parse_notify,
)
from hactl.minion.executors.base import Arg, CommandRefused, Executor, validate_args

GOLDEN = Path(__file__).parent / "golden"


async def _noop(ctx: object, args: object) -> dict[str, object]:
    return {}


def test_show_stat_golden_haproxy_2_6() -> None:
    """`show stat` from HAProxy 2.6.12 (drain, maint, down, weight 50) parses to the right items."""
    items = parse_show_stat((GOLDEN / "haproxy_show_stat.csv").read_text())
    assert set(items) == {
        "be_api/web1",
        "be_api/web2",
        "be_api/web3",
        "be_api/BACKEND",
        "be_galera/db1",
        "be_galera/db2",
        "be_galera/BACKEND",
    }
    assert items["be_api/web1"]["status"] == "UP"
    assert items["be_api/web1"]["weight"] == 50
    assert items["be_api/web2"]["status"] == "DOWN"
    assert items["be_api/web2"]["check_status"] == "L4CON"
    assert items["be_api/web3"]["status"] == "DRAIN"
    assert items["be_galera/db2"]["status"] == "MAINT"
    assert items["be_galera/db2"]["backup"]
    assert items["be_galera/BACKEND"]["status"] == "DOWN"


def test_show_stat_rejects_other_answers() -> None:
    """An error answer from the socket is not mistaken for an empty proxy list."""
    with pytest.raises(ValueError, match="not a show stat"):
        parse_show_stat("Unknown command. Please enter one of the following commands only :\n")


def test_servers_state_golden_admin_words() -> None:
    """`show servers state` from HAProxy 2.6 (a maint, a drain, a ready, a config-disabled
    server) gives each server's administrative state, whatever its checks say."""
    admin = parse_servers_state((GOLDEN / "haproxy_servers_state.txt").read_text())
    assert admin == {"b/a": "maint", "b/c": "drain", "b/d": "ready", "b/e": "disabled"}
    with pytest.raises(ValueError, match="not a show servers state"):
        parse_servers_state("Unknown command.\n")


@pytest.mark.parametrize(
    ("raw", "settled"),
    [
        ("UP 1/2", "UP"),
        ("DOWN 1/2", "DOWN"),
        ("NOLB 1/3", "NOLB"),
        ("MAINT", "MAINT"),
        ("MAINT (via)", "MAINT"),
        ("MAINT (resolution)", "MAINT"),
        ("DRAIN (agent)", "DRAIN"),
        ("DOWN (agent)", "DOWN"),
        ("DOWN (agent) 1/2", "DOWN"),
        ("no check", "no check"),
        ("UP (nonsense)", "UP (nonsense)"),
    ],
)
def test_transitional_statuses_fold(raw: str, settled: str) -> None:
    """'UP 1/2' counts as UP and 'DRAIN (agent)' as DRAIN: a rule compares one settled word."""
    assert normalize_status(raw) == settled


@pytest.mark.parametrize(
    ("line", "note"),
    [
        ('INSTANCE "VI_1" MASTER 150', Notify("INSTANCE", "VI_1", "MASTER", 150)),
        ('INSTANCE "VI_INTERNAL" BACKUP 100', Notify("INSTANCE", "VI_INTERNAL", "BACKUP", 100)),
        ('INSTANCE "VI_1" FAULT 0\n', Notify("INSTANCE", "VI_1", "FAULT", 0)),
        ('INSTANCE "VI_1" STOP 0', Notify("INSTANCE", "VI_1", "STOP", 0)),
        ('GROUP "G1" MASTER 0', Notify("GROUP", "G1", "MASTER", 0)),
        ("INSTANCE VI_1 MASTER 150", Notify("INSTANCE", "VI_1", "MASTER", 150)),
    ],
)
def test_keepalived_notify_lines(line: str, note: Notify) -> None:
    """keepalived notify FIFO / notify script lines parse to kind, name, state, priority."""
    assert parse_notify(line) == note


@pytest.mark.parametrize("line", ["", "hello", 'INSTANCE "VI_1" DANCING 5', 'INSTANCE "x" MASTER'])
def test_non_notify_lines_are_ignored(line: str) -> None:
    """Anything else on the FIFO is not a state."""
    assert parse_notify(line) is None


def test_ip_addr_json_and_agreement() -> None:
    """Local addresses come from `ip -j addr`; state and VIP presence are cross-checked."""
    text = json.dumps(
        [
            {
                "ifname": "eth0",
                "addr_info": [
                    {"family": "inet", "local": "10.99.0.11"},
                    {"family": "inet", "local": "10.99.0.100"},
                ],
            }
        ]
    )
    local = parse_ip_addr_json(text)
    assert local == {"10.99.0.11", "10.99.0.100"}
    assert agreement("MASTER", ["10.99.0.100"], local) == "ok"
    assert agreement("BACKUP", ["10.99.0.100"], local) == "vip_without_master"
    assert agreement("MASTER", ["10.99.0.200"], local) == "master_without_vip"
    assert agreement("BACKUP", ["10.99.0.200"], local) == "ok"


def test_diff_reports_significant_changes_with_prev() -> None:
    """Only significant fields count; appearing and vanishing items are changes too."""
    sig = frozenset({"status", "weight"})
    prev = {
        "be/web1": {"status": "UP", "weight": 1, "scur": 5},
        "be/web2": {"status": "UP", "weight": 1, "scur": 0},
    }
    cur = {
        "be/web1": {"status": "DOWN", "weight": 1, "scur": 9},
        "be/web3": {"status": "UP", "weight": 1, "scur": 0},
    }
    changes = [c.as_dict() for c in diff(prev, cur, sig)]
    assert changes == [
        {"item": "be/web1", "field": "status", "value": "DOWN", "prev": "UP"},
        {"item": "be/web2", "field": "present", "value": False, "prev": True},
        {"item": "be/web3", "field": "present", "value": True, "prev": False},
    ]
    assert diff(prev, {**prev, "be/web1": {**prev["be/web1"], "scur": 99}}, sig) == []
    assert diff(None, cur, sig) == []
    assert event_data(cur, [], resync=True)["resync"] is True


def test_argument_schema() -> None:
    """Unknown, missing, mistyped and out-of-choice arguments are refused before running."""
    ex = Executor(
        "x.y",
        (
            Arg("name", (str,)),
            Arg("n", (int,), required=False, default=3),
            Arg("mode", (str,), required=False, choices=("a", "b")),
        ),
        _noop,
    )
    assert validate_args(ex, {"name": "k"}) == {"name": "k", "n": 3, "mode": None}
    for bad in (
        {},
        {"name": 1},
        {"name": "k", "n": True},
        {"name": "k", "mode": "c"},
        {"name": "k", "rm": "-rf"},
    ):
        with pytest.raises(CommandRefused):
            validate_args(ex, bad)


def test_a_rotated_secret_is_masked_on_the_removed_line_too() -> None:
    """The minion only knows the new password; the old one on the '-' line is masked as well."""
    from hactl.minion.executors.state import mask_diff

    diff = (
        "--- a/haproxy.cfg\n+++ b/haproxy.cfg\n@@ -1,3 +1,3 @@\n"
        " global\n-    stats auth admin:OLDsecret\n+    stats auth admin:NEWsecret\n"
        "     bind 10.0.0.1:80\n"
    )
    out = mask_diff(diff, ["NEWsecret"])
    assert "OLDsecret" not in out and "NEWsecret" not in out
    assert "-    stats auth admin:***\n" in out and "+    stats auth admin:***\n" in out
    assert "     bind 10.0.0.1:80\n" in out  # the rest of the diff is intact


def test_master_rx_lower_pri_is_still_master() -> None:
    """keepalived's MASTER_RX_LOWER_PRI (a split brain ending) leaves the instance MASTER: as a
    state it once made a healthy holder look unhealthy and drained its API servers."""

    async def go() -> str:
        beacon = VrrpBeacon(context("ctl1", "vrrp", {"fifo": "/nonexistent/fifo"}))
        beacon.feed('INSTANCE "VI_INTERNAL" MASTER 150')
        beacon.feed('INSTANCE "VI_INTERNAL" MASTER_RX_LOWER_PRI 150')
        return str(beacon.states["VI_INTERNAL"]["state"])

    assert asyncio.run(go()) == "MASTER"


def test_priority_change_without_a_state_change_is_taken() -> None:
    """BACKUP_PRIORITY (vrrp_notify_priority_changes) updates the priority a BACKUP reports:
    a node that left FAULT while its check still failed (BACKUP 1) reports 50 once it rises."""

    async def go() -> tuple[dict[str, object], dict[str, object]]:
        beacon = VrrpBeacon(context("ctl3", "vrrp", {"fifo": "/nonexistent/fifo"}))
        beacon.feed('INSTANCE "VI_INTERNAL" BACKUP 1')
        since = beacon.states["VI_INTERNAL"]["since"]
        beacon.feed('INSTANCE "VI_INTERNAL" BACKUP_PRIORITY 50')
        st = dict(beacon.states["VI_INTERNAL"])
        assert st["since"] == since  # the state did not change: neither does its start
        beacon.feed('INSTANCE "VI_INTERNAL" MASTER_PRIORITY 150')  # promoted meanwhile
        return st, dict(beacon.states["VI_INTERNAL"])

    before, after = asyncio.run(go())
    assert (before["state"], before["priority"]) == ("BACKUP", 50)
    assert (after["state"], after["priority"]) == ("MASTER", 150)


def test_a_pem_secrets_lines_are_masked_in_a_new_files_diff() -> None:
    """A certificate chain and key given as one multi-line secret (the external VIP's PEM):
    every one of its lines is masked in the diff of the file that holds it, even the line
    that opens the key; the file's own lines around it stay."""
    from hactl.minion.executors.state import mask_diff

    key_body = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXMa1sgeva9Ylk35a"
    pem = (
        "-----BEGIN CERTIFICATE-----\nMIIBqjCCAVKgAwIBAgIUCK+Uc7QGQUbuF/InpEtS8IwEc+4w\n"
        "-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n"
        f"{key_body}\n-----END PRIVATE KEY-----\n"
    )
    diff = "--- /dev/null\n+++ /etc/haproxy/certs/external.pem (new)\n@@ -0,0 +1,6 @@\n" + "".join(
        f"+{line}\n" for line in pem.splitlines()
    )
    out = mask_diff(diff, [pem])
    assert key_body not in out and "PRIVATE KEY" not in out
    assert out.count("+***\n") == 6 and out.startswith("--- /dev/null\n+++ /etc/haproxy")
