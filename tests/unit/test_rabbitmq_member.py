"""``rabbitmq.member``: what it reads of a broker's database, and what it does with the
package's standalone broker (the service calls replaced by a recorder; the files are real)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hactl.minion.executors import rabbitmq_member as rm
from hactl.minion.executors.base import CommandRefused, ExecContext, RabbitSettings, ServiceCommands

pytestmark = pytest.mark.unit
NODE = "rabbit@ctl2"


def _ctx(tmp_path: Path) -> ExecContext:
    return ExecContext(
        minion_id="ctl2",
        services={"rabbitmq": ServiceCommands(start=("true",), pidfile=str(tmp_path / "pid"))},
        rabbitmq=RabbitSettings(NODE, env={"RABBITMQ_MNESIA_BASE": str(tmp_path / "mnesia")}),
    )


def _database(tmp_path: Path, nodes: str) -> Path:
    node_dir = tmp_path / "mnesia" / NODE
    node_dir.mkdir(parents=True)
    (node_dir / "cluster_nodes.config").write_text(nodes)
    (tmp_path / "mnesia" / f"{NODE}-feature_flags").write_text("[].\n")
    return node_dir


ARGS: dict[str, Any] = {
    "service": "rabbitmq",
    "peers": ["rabbit@ctl1"],
    "seed": False,
    "timeout": 1,
}


class Services:
    """Records the stops a resource asks for; the broker runs until it is stopped."""

    def __init__(self) -> None:
        self.running = True
        self.calls: list[str] = []

    async def action(
        self, ctx: ExecContext, name: str, action: str, *, drain: bool = True
    ) -> tuple[bool, str]:
        self.calls.append(f"{action} {name}" + ("" if drain else " (no drain)"))
        self.running = False
        return True, ""

    async def is_running(self, ctx: ExecContext, name: str) -> bool:
        return self.running


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Services:
    s = Services()
    monkeypatch.setattr(rm, "service_action", s.action)
    monkeypatch.setattr(rm, "service_running", s.is_running)
    return s


def test_cluster_nodes_reads_the_first_list(tmp_path: Path) -> None:
    """All nodes (the first list) of cluster_nodes.config, quoted names too; None without a
    database, [] for a database without the file."""
    assert rm.cluster_nodes(tmp_path / "none") is None
    (tmp_path / "half").mkdir()
    assert rm.cluster_nodes(tmp_path / "half") == []
    node_dir = _database(tmp_path, "{['rabbit@ctl-1.example',rabbit@ctl2],\n [rabbit@ctl2]}.\n")
    assert rm.cluster_nodes(node_dir) == ["rabbit@ctl-1.example", "rabbit@ctl2"]


def test_held_data_names_queues_and_stored_messages(tmp_path: Path) -> None:
    """A fresh database holds nothing; a quorum queue's folder, a classic queue's index and a
    non-empty persistent store are each named."""
    node_dir = _database(tmp_path, f"{{[{NODE}],[{NODE}]}}.")
    vhost = node_dir / "msg_stores/vhosts/628WB79CIFDYO9LJI6DKMI09L"
    (vhost / "msg_store_persistent").mkdir(parents=True)
    (vhost / "msg_store_persistent/0.rdq").write_bytes(b"")
    (node_dir / "quorum" / NODE).mkdir(parents=True)
    (node_dir / "quorum" / NODE / "names.dets").write_bytes(b"x")
    assert rm.held_data(node_dir, NODE) == []
    (node_dir / "quorum" / NODE / "2F_QQ1OCBFEFSA5LT1").mkdir()
    (vhost / "queues/ABC").mkdir(parents=True)
    (vhost / "msg_store_persistent/0.rdq").write_bytes(b"m")
    held = rm.held_data(node_dir, NODE)
    assert held == [
        "quorum queue 2F_QQ1OCBFEFSA5LT1",
        "classic queue ABC",
        "persistent messages in 628WB79CIFDYO9LJI6DKMI09L",
    ]


def test_a_broker_never_started_or_already_clustered_is_left_alone(
    tmp_path: Path, services: Services
) -> None:
    """No database: its first start runs peer discovery; a database that names a peer: a
    member. Neither stops anything."""
    ctx = _ctx(tmp_path)
    blank = asyncio.run(rm.member(ctx, ARGS, False))
    assert blank["result"] is True and not blank["changes"] and "no database" in blank["comment"]
    _database(tmp_path, f"{{[rabbit@ctl1,{NODE}],[rabbit@ctl1,{NODE}]}}.")
    member = asyncio.run(rm.member(ctx, ARGS, False))
    assert member == {"result": True, "changes": {}, "comment": "a member with rabbit@ctl1"}
    assert services.calls == []


def test_the_package_broker_is_stopped_and_its_database_kept_aside(
    tmp_path: Path, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's standalone broker: stopped with its supervision held until its database and
    feature flags are moved aside (the hold then says: left stopped), nothing deleted; a dry
    run changes nothing."""
    node_dir = _database(tmp_path, f"{{[{NODE}],[{NODE}]}}.")
    ctx = _ctx(tmp_path)
    dry = asyncio.run(rm.member(ctx, {**ARGS, "seed": True}, True))
    assert dry["result"] is None and dry["changes"] == {"standalone": NODE}
    assert node_dir.is_dir() and services.calls == []
    held_at_move: list[str] = []
    move = rm._move_aside

    def recorded_move(path: Path) -> str:
        held_at_move.append(ctx.planned.held("rabbitmq"))
        return move(path)

    monkeypatch.setattr(rm, "_move_aside", recorded_move)
    out = asyncio.run(rm.member(ctx, {**ARGS, "seed": True}, False))
    assert out["result"] is True and "forms the cluster (seed)" in out["comment"], out
    assert held_at_move == ["rabbitmq.member"], "supervision held until the database is aside"
    assert ctx.planned.held("rabbitmq") == "" and ctx.planned.ended("rabbitmq") is False
    assert services.calls == ["stop rabbitmq (no drain)"]
    kept = Path(out["changes"]["kept"])
    assert not node_dir.exists() and rm.cluster_nodes(kept) == [NODE]
    assert kept.with_name(f"{kept.name}-feature_flags").exists()
    assert not (tmp_path / "mnesia" / f"{NODE}-feature_flags").exists()


def test_a_non_seed_waits_for_a_peer_then_refuses(
    tmp_path: Path, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-seed whose peers all still run their package brokers (none answers with the
    site's cookie) does not move its database: it would form a second cluster."""

    async def nobody(r: RabbitSettings, peers: list[str]) -> str | None:
        return None

    async def joined(r: RabbitSettings, peers: list[str]) -> str | None:
        return peers[0]

    node_dir = _database(tmp_path, f"{{[{NODE}],[{NODE}]}}.")
    monkeypatch.setattr(rm, "_peer_running", nobody)
    monkeypatch.setattr(rm.asyncio, "sleep", _no_sleep)
    out = asyncio.run(rm.member(_ctx(tmp_path), ARGS, False))
    assert out["result"] is False and "second cluster" in out["comment"], out
    assert node_dir.is_dir() and services.calls == []
    monkeypatch.setattr(rm, "_peer_running", joined)
    out = asyncio.run(rm.member(_ctx(tmp_path), ARGS, False))
    assert out["result"] is True and "joins rabbit@ctl1's cluster" in out["comment"], out


async def _no_sleep(_: float) -> None:
    return None


def test_a_standalone_broker_with_data_is_refused(tmp_path: Path, services: Services) -> None:
    """An operator's single-node broker (a quorum queue) is not the package's fresh one: it
    is refused with what it holds, and neither stopped nor moved."""
    node_dir = _database(tmp_path, f"{{[{NODE}],[{NODE}]}}.")
    (node_dir / "quorum" / NODE / "2F_QQ").mkdir(parents=True)
    out = asyncio.run(rm.member(_ctx(tmp_path), {**ARGS, "seed": True}, False))
    assert out["result"] is False and "quorum queue 2F_QQ" in out["comment"], out
    assert node_dir.is_dir() and services.calls == []


def test_bad_peers_and_unknown_services_are_refused(tmp_path: Path) -> None:
    """Peers must be node names and the service one of this minion's, before anything runs."""
    ctx = _ctx(tmp_path)
    with pytest.raises(CommandRefused, match="node names"):
        rm.settings(ctx, {**ARGS, "peers": ["ctl1; rm -rf /"]})
    with pytest.raises(CommandRefused, match="not configured"):
        rm.settings(ctx, {**ARGS, "service": "poweroff"})
    with pytest.raises(CommandRefused, match="no rabbitmq section"):
        rm.settings(ExecContext(minion_id="x"), ARGS)
