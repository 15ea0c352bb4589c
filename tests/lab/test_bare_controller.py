"""The lab's controllers are what the packages leave plus hactl: MariaDB and RabbitMQ run
standalone after install, and the first ``hactl apply`` of the shipped states forms the Galera
cluster (the writer stops its standalone server and bootstraps, the others stop theirs and
join) and the RabbitMQ cluster (each package broker stopped, its database moved aside, the
restarted broker clustered by peer discovery). A second apply changes nothing there."""

from __future__ import annotations

import json
import re
from pathlib import Path

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


def test_the_lab_was_brought_up_by_the_guides_own_blocks(lab: L.Lab) -> None:
    """Issue 25: the lab's bring-up ran docs/deploy.md's blocks as written -- the identities
    (``hactl auth init``: the guide's alice is there), each NATS server's whole config
    (``hactl auth export --server-config``, the server running on it), the secrets and the
    first apply (master and every minion pinged, the test apply, the apply, ``hactl
    status``; the diffs show no private key) -- and it ended at the healthy baseline: 3
    Galera Synced, 3 brokers in one cluster, every HAProxy server UP, each VIP held once."""
    from hactl.auth.store import AuthDir
    from hactl.lab.baseline import deviations
    from hactl.minion.executors.rabbitmq_member import cluster_nodes

    names = {e.identity.name for e in AuthDir(lab.auth_dir).entries()}
    assert {"alice", "master", *lab.net.nodes} <= names, names
    for n in lab.net.nodes:
        conf = lab.node_dir(n) / "nats" / "nats-server.conf"
        assert f'listen: "{lab.net.address(n)}:4222"' in conf.read_text(), n
        argv = Path(f"/proc/{lab.pids[f'nats:{n}']}/cmdline").read_bytes().split(b"\0")
        assert str(conf).encode() in argv, (n, argv)
    log = (lab.dir / "apply.log").read_text()
    assert "master: pong" in log, log[:2000]
    assert all(f"{n}: pong" in log for n in lab.net.nodes), log[:2000]
    test_at = log.index("┃ would change ┃")  # the test apply's table, then the apply's
    apply_at = log.index("┃ changed ┃", test_at)
    assert "VIPs" in log[apply_at:] and "Minions" in log[apply_at:], log[-3000:]  # hactl status
    assert "PRIVATE KEY" not in log, "a key in the apply's diffs"
    wrong = deviations(lab)
    assert not wrong, wrong
    want = {f"rabbit@{n}" for n in lab.net.nodes}
    for n in lab.net.nodes:
        base = lab.node_dir(n) / "rabbit/mnesia" / f"rabbit@{n}"
        assert set(cluster_nodes(base) or ()) == want, n
    report(
        "bare controller: brought up by docs/deploy.md's blocks (auth, nats x3, secrets, "
        "first-apply) and at the healthy baseline: Galera 3 Synced, RabbitMQ 3 in one "
        "cluster, every HAProxy server UP, each VIP held once"
    )
