"""The health agent: HAProxy keeps a desynced Galera node out with no master at all (issue 13).

The minion on each Galera node answers HAProxy's agent-check (port 9200) from its own latest
Galera report. With every master stopped, only the agent can take a node out whose mariadbd
still accepts TCP; and it must never clear the maint the reconciler set.
"""

from __future__ import annotations

import time

from hactl.lab import daemons as d
from hactl.lab import lab as L
from tests.lab.conftest import report
from tests.lab.helpers import admin_states, cut_galera, heal_galera, server_status, wait_until

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)


def _everywhere(lab: L.Lab, server: str) -> list[tuple[str, str, str]]:
    """(status, raw status, admin state) of galera/``server`` on every HAProxy."""
    out = []
    for h in lab.net.nodes:
        items = d.haproxy_items(lab.node_dir(h) / "run/haproxy.sock")
        item = items.get(f"galera/{server}", {})
        admin = admin_states(lab, h).get(f"galera/{server}", "?")
        out.append((str(item.get("status")), str(item.get("raw_status")), admin))
    return out


def _up_everywhere(lab: L.Lab, server: str) -> bool:
    return all(st == "UP" and adm == "ready" for st, _, adm in _everywhere(lab, server))


def test_agent_takes_a_desynced_node_out_with_every_master_stopped(lab: L.Lab) -> None:
    """No master: ctl2's Galera traffic cut (non-Primary, 3306 still open) -> every HAProxy
    marks galera/ctl2 DOWN through the agent alone (its admin state untouched, ready); healed
    -> UP again, still with no master."""
    wait_until(lambda: _up_everywhere(lab, "ctl2"), 60, "galera/ctl2 UP everywhere")
    L.stop_master(lab)
    try:
        t0 = time.monotonic()
        cut_galera(lab, "ctl2")
        try:
            t_out = wait_until(
                lambda: all(
                    st == "DOWN" and "agent" in raw and adm == "ready"
                    for st, raw, adm in _everywhere(lab, "ctl2")
                ),
                60,
                f"galera/ctl2 DOWN (agent) everywhere: now {_everywhere(lab, 'ctl2')}",
            )
        finally:
            heal_galera(lab, "ctl2")
        t1 = time.monotonic()
        t_back = wait_until(lambda: _up_everywhere(lab, "ctl2"), 90, "galera/ctl2 UP again")
    finally:
        L.start_master(lab, "master")
    report(
        f"health agent, no master: ctl2's Galera cut -> DOWN (agent) on all 3 HAProxies "
        f"{t_out - t0:.1f} s after the cut (admin state left ready); healed -> UP "
        f"{t_back - t1:.1f} s after"
    )


def test_agent_never_clears_the_maint_the_reconciler_set(lab: L.Lab) -> None:
    """With the master: ctl3 desynced -> the reconciler sets MAINT everywhere; master stopped,
    ctl3 healed and Synced -> the agent says up, yet MAINT stays; master back -> ready."""
    wait_until(lambda: _up_everywhere(lab, "ctl3"), 60, "galera/ctl3 UP everywhere")
    cut_galera(lab, "ctl3")
    try:
        wait_until(
            lambda: {adm for _, _, adm in _everywhere(lab, "ctl3")} == {"maint"},
            60,
            "the reconciler's maint on galera/ctl3",
        )
        L.stop_master(lab)
    finally:
        heal_galera(lab, "ctl3")
    try:
        sock = lab.node_dir("ctl3") / "mysql/mysqld.sock"
        wait_until(lambda: d.galera_state(sock) == ("Primary", "Synced"), 90, "ctl3 Synced")
        time.sleep(5)  # ten agent-checks (the lab's agent-inter 500ms) that say up
        states = _everywhere(lab, "ctl3")
        assert {adm for _, _, adm in states} == {"maint"}, states
        assert {st for st, _, _ in states} == {"MAINT"}, states
    finally:
        t0 = time.monotonic()
        L.start_master(lab, "master")
    t_ready = wait_until(lambda: _up_everywhere(lab, "ctl3"), 60, "ready after the master is back")
    for h in lab.net.nodes:
        assert server_status(lab, h)["galera/ctl3"] == "UP"
    report(
        "health agent: the reconciler's MAINT on galera/ctl3 kept while the agent said up (5 s, "
        f"no master); master started -> ready and UP everywhere {t_ready - t0:.1f} s later"
    )
