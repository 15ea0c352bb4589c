"""The lab's controllers are what the packages leave plus hactl: MariaDB and RabbitMQ run
standalone after install, and the first ``hactl apply`` of the shipped states forms the Galera
cluster (the writer stops its standalone server and bootstraps, the others stop theirs and
join) and the RabbitMQ cluster (each package broker stopped, its database moved aside, the
restarted broker clustered by peer discovery). A second apply changes nothing there."""

from __future__ import annotations

import json
import re

from hactl.data import states_dir
from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.minion.executors.rabbitmq_member import cluster_nodes
from tests.lab.conftest import report
from tests.lab.helpers import hactl

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)


def _members(text: str, rid: str = "galera_member (galera.member") -> dict[str, str]:
    """node -> what the apply printed of one resource (``id (type``): its line, its comment and
    its changes, up to the next resource's line, from the lab's first apply log."""
    out = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if f" {rid}" in line:
            node = line.split()[0]
            end = next(
                (j for j in range(i + 1, len(lines)) if re.match(r"^\S+ \S+ \(\S+", lines[j])),
                len(lines),
            )
            out[node] = " ".join(lines[i:end])
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
    brokers = {}
    for n, m in again["minions"].items():
        [member] = [r for r in m["resources"] if r["id"] == "galera_member"]
        assert member["result"] is True and not member["changes"], (n, member)
        comments[n] = member["comment"]
        [broker] = [r for r in m["resources"] if r["id"] == "rabbitmq_member"]
        assert broker["result"] is True and not broker["changes"], (n, broker)
        brokers[n] = broker["comment"]
    assert set(comments.values()) == {"a Synced member"}, comments
    assert all(c.startswith("a member with ") for c in brokers.values()), brokers
    report(
        f"bare controller: first apply formed Galera ({writer} bootstrapped, "
        f"{', '.join(others)} joined, each after stopping the package's standalone server), "
        f"one cluster {uuids.pop()[:8]}; a second apply: no change on any member"
    )


def test_the_first_apply_replaced_each_package_broker_by_a_cluster_member(lab: L.Lab) -> None:
    """Each broker the package started standalone (its own cookie, a database of itself
    alone) was stopped by the first apply and its database kept aside; the broker the apply
    started again is clustered with every other node, seed first."""
    seed = sorted(lab.net.nodes)[0]
    first = _members((lab.dir / "apply.log").read_text(), "rabbitmq_member (rabbitmq.member")
    assert set(first) == set(lab.net.nodes), first
    want = {f"rabbit@{n}" for n in lab.net.nodes}
    kept = {}
    for n in lab.net.nodes:
        assert "'standalone': 'rabbit@" in first[n], first[n]
        base = lab.node_dir(n) / "rabbit/mnesia"
        [old] = [p for p in base.glob(f"rabbit@{n}.standalone-*") if p.is_dir()]
        assert cluster_nodes(old) == [f"rabbit@{n}"], old  # the package's, of itself alone
        kept[n] = old.name
        assert set(cluster_nodes(base / f"rabbit@{n}") or ()) == want, n
    assert "forms the cluster (seed)" in first[seed], first[seed]
    for n in lab.net.nodes:
        if n != seed:
            assert "joins rabbit@" in first[n], first[n]
    report(
        f"bare controller: the first apply stopped each package broker and kept its database "
        f"({', '.join(sorted(kept.values()))}); {seed} formed the RabbitMQ cluster, the others "
        f"joined it; every broker's database names all {len(want)}"
    )
