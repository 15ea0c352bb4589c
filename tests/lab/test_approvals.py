"""Approvals in the lab (issue 16): a Galera member unreachable (its minion SIGSTOPped) and the
other two mariadbd killed -9. The shipped recovery does not bootstrap on its own: it asks.
Unanswered, the question expires to its default (deny); denied, nothing starts and the denial
is in the audit stream; approved, the most advanced reachable member is bootstrapped, the
other rejoins, the unreachable one rejoins by itself once its minion runs again, and every
committed row is there.

The lab's copy of the rule answers faster than the shipped one (approve timeout 10 s instead
of 10 min, cooldown 5 s instead of 60 s) and its minions resync every 3 s, so a new question
follows an answer within seconds. Only HAProxy, keepalived and Galera run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hactl.lab import bus as lab_bus
from hactl.lab import daemons as d
from hactl.lab import lab as L
from tests.lab.conftest import report
from tests.lab.helpers import hactl, recent_decisions, stored_events, wait_until

# shares one lab with test_singleton (tests/lab/conftest.py: shared modules of one
# configuration run together, after the full lab's)
LAB_SHARED = True
LAB_COMPONENTS = {"haproxy", "keepalived", "galera"}
LAB_RESYNC = 3.0
ROWS = 200


def _sock(lab: L.Lab, node: str) -> Any:
    return lab.node_dir(node) / "mysql/mysqld.sock"


def _write_rules(lab: L.Lab, text: str) -> None:
    """The lab's copy of the Galera rules replaced by ``text``; waits for the reload."""
    log = lab.dir / "master.log"
    mark = len(d.read_log(log))
    (lab.dir / "reactors" / "galera.yaml").write_text(text)
    wait_until(lambda: "rules_reloaded" in d.read_log(log)[mark:], 20, "rules reloaded")


@pytest.fixture
def fast_rule(lab: L.Lab) -> Iterator[None]:
    """The lab's copy of the Galera rules quicker to ask again for this test, and as it was
    after it (the lab is shared with test_singleton)."""
    text = (lab.dir / "reactors" / "galera.yaml").read_text()
    fast = text.replace(
        "approve: {timeout: 10m, default: deny}", "approve: {timeout: 10s, default: deny}"
    )
    fast = fast.replace("  cooldown: 15s\n", "  cooldown: 5s\n", 1)  # the lab's 15 s
    assert fast != text
    _write_rules(lab, fast)
    try:
        yield
    finally:
        _write_rules(lab, text)


def _pending(lab: L.Lab, seen: set[str], timeout: float = 90) -> dict[str, Any]:
    """The next pending approval not seen before (read with ``hactl approvals --json``)."""
    found: list[dict[str, Any]] = []

    def new() -> bool:
        rows = json.loads(hactl(lab, "approvals", "--json"))["approvals"]
        found[:] = [r for r in rows if r["open"] and r["id"] not in seen]
        return bool(found)

    try:
        wait_until(new, timeout, "a pending approval", step=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{recent_decisions(lab, '3m')}") from None
    seen.add(found[0]["id"])
    return found[0]


def _state(lab: L.Lab, approval_id: str) -> dict[str, Any]:
    rows = json.loads(hactl(lab, "approvals", "--all", "--json"))["approvals"]
    return next(r for r in rows if r["id"] == approval_id)


def _primary_synced(lab: L.Lab, nodes: list[str]) -> bool:
    return all(d.galera_state(_sock(lab, n)) == ("Primary", "Synced") for n in nodes)


@pytest.mark.usefixtures("fast_rule")
def test_unreachable_member_asks_expires_is_denied_then_approved(lab: L.Lab) -> None:
    """Expire (default deny), deny (audited, nothing started), approve (recovered, 0 lost)."""
    s1 = _sock(lab, "ctl1")
    d.galera_sql(s1, "CREATE DATABASE IF NOT EXISTS appr")
    d.galera_sql(s1, "CREATE TABLE IF NOT EXISTS appr.r (id INT PRIMARY KEY)")
    for i in range(1, ROWS + 1):
        d.galera_sql(s1, f"INSERT INTO appr.r VALUES ({i})")
    since = datetime.now(UTC)
    minion3 = lab.pids["minion:ctl3"]
    os.kill(minion3, signal.SIGSTOP)  # ctl3 unreachable: its position cannot be read
    try:
        time.sleep(12)  # declared lost (lost_after 10 s): its last report is no evidence
        for n in ("ctl1", "ctl2"):
            os.kill(lab.daemon_pid(n, "galera") or 0, signal.SIGKILL)
        t0 = time.monotonic()
        seen: set[str] = set()
        first = _pending(lab, seen)
        asked = time.monotonic() - t0
        assert "ctl3" in first["question"] and first["plan"]["would"]["node"] in ("ctl1", "ctl2")
        wait_until(lambda: _state(lab, first["id"])["state"] == "expired", 40, "expired")
        second = _pending(lab, seen)
        hactl(lab, "deny", second["id"], "--reason", "ctl3 is rebooting; wait for it")
        time.sleep(3.0)
        assert not any(d.galera_state(_sock(lab, n)) for n in ("ctl1", "ctl2")), "denied, started"
        third = _pending(lab, seen)
        t_ok = time.monotonic()
        hactl(lab, "approve", third["id"], "--reason", "ctl3's disk failed; go")
        try:
            wait_until(lambda: _primary_synced(lab, ["ctl1", "ctl2"]), 120, "ctl1+ctl2 Synced")
        except AssertionError as exc:
            steps = [
                line[:300]
                for line in d.read_log(lab.dir / "master.log").splitlines()
                if "galera" in line and ("step" in line or "approval" in line or "action" in line)
            ]
            raise AssertionError(
                f"{exc}\n{recent_decisions(lab, '4m')}\n" + "\n".join(steps[-30:])
            ) from None
        recovered = time.monotonic() - t_ok
    finally:
        os.kill(minion3, signal.SIGCONT)
    wait_until(lambda: _primary_synced(lab, list(lab.net.nodes)), 120, "all 3 Synced")
    for n in lab.net.nodes:
        rows = d.galera_sql(_sock(lab, n), "SELECT COUNT(*), MAX(id) FROM appr.r", causal=True)
        assert rows[0] == (ROWS, ROWS), (n, rows)
    audit = asyncio.run(
        stored_events(lab, "hactl/audit/**", since, "HACTL_AUDIT", lab_bus.LAB_OPERATOR)
    )
    verbs = [e.tag.rsplit("/", 1)[1] for e in audit]
    assert "deny" in verbs and "approve" in verbs, verbs
    report(
        f"approvals: ctl3 unreachable, ctl1+ctl2 killed: asked after {asked:.2f} s; expired to "
        f"deny, denied (audited, nothing started), approved: ctl1+ctl2 Synced {recovered:.2f} s "
        f"after the approval, ctl3 rejoined by itself; {ROWS}/{ROWS} rows on every node"
    )
