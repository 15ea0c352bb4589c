"""The lab's controllers are what the packages leave plus hactl: MariaDB runs standalone after
install, and the first ``hactl apply`` of the shipped states forms the Galera cluster (the
writer stops its standalone server and bootstraps, the others stop theirs and join). A second
apply changes nothing there."""

from __future__ import annotations

import json

from hactl.data import states_dir
from hactl.lab import daemons as d
from hactl.lab import lab as L
from tests.lab.conftest import report
from tests.lab.helpers import hactl

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)


def _members(text: str) -> dict[str, str]:
    """node -> the changes of its galera_member resource, from the lab's first apply log."""
    out = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if " galera_member (galera.member" in line:
            node = line.split()[0]
            out[node] = " ".join(lines[i : i + 3])
    return out


def test_the_first_apply_formed_galera_and_a_second_changes_nothing(lab: L.Lab) -> None:
    """The writer bootstrapped, the others joined, each after stopping the package's
    standalone server; all Synced in one cluster; re-applying leaves every member alone."""
    writer, *others = lab.net.nodes
    first = _members((lab.dir / "apply.log").read_text())
    assert set(first) == set(lab.net.nodes), first
    assert "'stop': 'standalone'" in first[writer] and "'start': 'bootstrap'" in first[writer]
    for n in others:
        assert "'stop': 'standalone'" in first[n] and "'start': 'join (" in first[n], first[n]
    uuids = set()
    for n in lab.net.nodes:
        rows = dict(
            d.galera_sql(lab.node_dir(n) / "mysql/mysqld.sock", "SHOW STATUS LIKE 'wsrep_%'")
        )
        assert rows["wsrep_local_state_comment"] == "Synced", (n, rows)
        assert rows["wsrep_cluster_size"] == str(len(lab.net.nodes)), (n, rows)
        uuids.add(rows["wsrep_cluster_state_uuid"])
    assert len(uuids) == 1, uuids
    again = json.loads(
        hactl(
            lab,
            "apply",
            str(states_dir()),
            "--pillar",
            str(lab.dir / "lab-pillar.yaml"),
            "--json",
            timeout=180,
        )
    )
    comments = {}
    for n, m in again["minions"].items():
        [member] = [r for r in m["resources"] if r["id"] == "galera_member"]
        assert member["result"] is True and not member["changes"], (n, member)
        comments[n] = member["comment"]
    assert set(comments.values()) == {"a Synced member"}, comments
    report(
        f"bare controller: first apply formed Galera ({writer} bootstrapped, "
        f"{', '.join(others)} joined, each after stopping the package's standalone server), "
        f"one cluster {uuids.pop()[:8]}; a second apply: no change on any member"
    )
