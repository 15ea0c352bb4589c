"""Moving services that ran on classic queues to quorum queues, as docs/clients.md says: a new
vhost from the pillar (``clients.vhost``), imported into the running brokers by the first
apply, the services restarted on the rendered settings, the old vhost deleted. Measured with
the real oslo.messaging workload: RPC on the legacy vhost (classic queues, non-durable
exchanges), then on the new one with quorum queues."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hactl.data import states_dir
from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.lab.config import paths, site_etc
from hactl.lab.workload import Workload, prepare
from tests.lab.conftest import report
from tests.lab.helpers import hactl

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)
LEGACY, NEW = "legacy", "openstack"


def _ctl(lab: L.Lab, *args: str) -> str:
    """rabbitmqctl against the first node's broker, from inside its namespace."""
    res = d.rabbitmqctl(lab.dir, lab.net, lab.net.nodes[0], "-q", *args)
    assert res.returncode == 0, f"rabbitmqctl {' '.join(args)}: {res.stderr[-500:]}"
    return res.stdout


def _queue_types(lab: L.Lab, vhost: str) -> dict[str, str]:
    rows = json.loads(_ctl(lab, "list_queues", "-p", vhost, "name", "type", "--formatter", "json"))
    return {str(r["name"]): str(r["type"]) for r in rows}


def _apply(lab: L.Lab, *pillars: str) -> dict[str, object]:
    args = ["apply", str(states_dir()), "--json"]
    for p in (str(lab.dir / "lab-pillar.yaml"), *pillars):
        args += ["--pillar", p]
    out: dict[str, object] = json.loads(hactl(lab, *args, timeout=240))
    return out


def test_services_move_from_classic_to_quorum_queues_on_a_new_vhost(lab: L.Lab) -> None:
    """Classic queues on the legacy vhost serve RPC; clients.vhost + one apply make the new
    vhost (imported, no broker restart); the services restarted on the rendered settings use
    quorum queues there; the legacy vhost is deleted."""
    password = (site_etc(lab.dir) / "rabbitmq-openstack.pw").read_text().strip()
    brokers = ",".join(f"openstack:{password}@{lab.net.address(n)}:5672" for n in lab.net.nodes)
    _ctl(lab, "add_vhost", LEGACY)
    _ctl(lab, "set_permissions", "-p", LEGACY, "openstack", ".*", ".*", ".*")
    legacy = lab.dir / "legacy-clients.conf"
    legacy.write_text(
        f"[DEFAULT]\ntransport_url = rabbit://{brokers}/{LEGACY}\n"
        "[oslo_messaging_rabbit]\nrabbit_quorum_queue = false\n"
        "rabbit_transient_quorum_queue = false\n"
    )
    extra = lab.dir / "vhost-pillar.yaml"
    extra.write_text(f"clients: {{vhost: {NEW}}}\n")
    configs = prepare(lab)
    try:
        with Workload(configs[0], legacy, db=False) as old:
            t0 = time.time()
            time.sleep(2.0)
        before = old.figures(t0)["rpc"]
        classic = _queue_types(lab, LEGACY)
        assert classic and set(classic.values()) == {"classic"}, classic
        assert before["calls"] > 0 and before["failed"] == 0, before
        # the migration: the pillar names the new vhost; one apply imports it and renders
        # the services' settings; the services restart on them
        applied = _apply(lab, str(extra))
        minions = applied["minions"]
        assert isinstance(minions, dict) and all(m["status"] == "ok" for m in minions.values())
        clients = Path(paths(lab.dir)["clients_conf"].replace("{id}", lab.net.nodes[0]))
        assert f":5672/{NEW}\n" in clients.read_text()
        assert NEW in _ctl(lab, "list_vhosts")
        with Workload(configs[0], db=False) as moved:
            t1 = time.time()
            time.sleep(2.0)
        after = moved.figures(t1)["rpc"]
        quorum = _queue_types(lab, NEW)
        assert after["calls"] > 0 and after["failed"] == 0, after
        assert "quorum" in quorum.values(), quorum
        _ctl(lab, "delete_vhost", LEGACY)
        assert LEGACY not in _ctl(lab, "list_vhosts").split()
    finally:
        _apply(lab)  # the lab's own pillar again (its vhost "/" for the next modules)
    report(
        f"quorum migration: legacy vhost {len(classic)} classic queue(s), {before['calls']} "
        f"calls 0 failed; one apply made vhost {NEW} (imported, brokers not restarted); "
        f"services restarted: {after['calls']} calls 0 failed, queue types "
        f"{sorted(set(quorum.values()))}; legacy vhost deleted"
    )
