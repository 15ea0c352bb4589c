"""Trust I in the lab, tried as an attacker and as an operator would (issue: authenticated bus).

- no credentials: no connection; a valid operator key or a compromised minion key forging the
  command and the event that once took ctl2 out: refused by the servers, ctl2 stays UP, the
  reactor never acts;
- during `hactl apply`, an operator listening on everything it may hear sees no secret and no
  password hash; the apply is in the audit stream under the admin's key;
- a revoked person is disconnected by a reload while every other connection stays up.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import UTC, datetime, timedelta

import nats
import nats.errors
import pytest

from hactl.auth.store import AuthDir
from hactl.bus import Bus
from hactl.errors import CommandError, PermissionRefused
from hactl.lab import lab as L
from hactl.wire.envelope import Event, new_event
from master.states.render import rabbitmq_password_hash
from tests.lab.conftest import report
from tests.lab.helpers import server_status, wait_until


def _ctl2_everywhere(lab: L.Lab) -> dict[str, str]:
    return {f"{n}:{k}": v for n in lab.net.nodes for k, v in server_status(lab, n).items()
            if k.endswith("/ctl2")}  # fmt: skip


async def _decisions_since(lab: L.Lab, since: datetime) -> list[Event]:
    bus = await Bus.connect(lab.nats_url, lab.client_auth(), name="trust-audit", timeout=5)
    got: list[Event] = []

    async def on_event(e: Event) -> None:
        got.append(e)

    try:
        await bus.replay("hactl/reactor/**", since, on_event, "HACTL_EVENTS")
        await asyncio.sleep(0.5)
    finally:
        await bus.close()
    return got


async def test_forged_command_and_event_are_refused(lab: L.Lab) -> None:
    """The attack of the issue, replayed: nothing reaches ctl2 and the reactor does nothing."""
    wait_until(lambda: set(_ctl2_everywhere(lab).values()) == {"UP"}, 30, "ctl2 UP everywhere")
    start = datetime.now(UTC)
    servers = [f"nats://{lab.net.address(n)}:4222" for n in lab.net.nodes]
    with pytest.raises((nats.errors.Error, OSError, TimeoutError)):  # no credentials at all
        await asyncio.wait_for(nats.connect(servers, allow_reconnect=False), 5)
    forged_cmd = {"verb": "set_state", "backend": "be_keystone_public", "server": "ctl2",
                  "state": "maint"}  # fmt: skip
    forged_event = new_event("hactl/beacon/ctl2/galera", "ctl2", {
        "items": {"local": {"running": True, "synced": False, "cluster_status": "Primary"}},
        "resync": False,
        "changes": [{"item": "local", "field": "synced", "value": False, "prev": True, "n": 1}],
    })  # fmt: skip
    for who in (L.LAB_OPERATOR, "ctl1"):  # a person's key, and a compromised minion's
        bus = await Bus.connect(lab.nats_url, lab.client_auth(who), name=f"attacker-{who}")
        try:
            with pytest.raises(CommandError, match="permission denied"):
                await bus.request("ctl2", "haproxy.runtime", forged_cmd, timeout=3)
            with pytest.raises(PermissionRefused):
                await bus.persist(forged_event, timeout=3)
        finally:
            await bus.close()
    await asyncio.sleep(3)  # the reactor acted 0.14 s after the forged event in the open bus
    states = _ctl2_everywhere(lab)
    assert set(states.values()) == {"UP"}, states
    acted = [e for e in await _decisions_since(lab, start)
             if "ctl2" in str(e.data) or e.data.get("event_id") == forged_event.id]  # fmt: skip
    assert acted == [], [e.tag for e in acted]
    report(f"trust: forged command and event from {L.LAB_OPERATOR} and ctl1 refused; "
           f"ctl2 UP in {len(states)} server entries; 0 reactor decisions")  # fmt: skip


async def test_apply_shows_an_operator_no_secret_and_is_audited(lab: L.Lab) -> None:
    """An operator hears everything it may during an apply that rotates the HAProxy stats
    password: not one secret, not one password hash. The apply is audited with its key."""
    secrets = {p: (lab.dir / p).read_text().strip() for p in
               ("stats.pw", "rabbit-monitor.pw", "rabbit-openstack.pw")}  # fmt: skip
    old_stats = secrets["stats.pw"]
    new_stats = "rotated" + old_stats[::-1]
    needles = [*secrets.values(), new_stats]
    needles += [rabbitmq_password_hash(pw, user) for pw in secrets.values()
                for user in ("openstack", "monitor", "hactl-monitor", "guest")]  # fmt: skip
    auth = lab.client_auth(L.LAB_OPERATOR)
    heard: list[bytes] = []

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        heard.append(msg.subject.encode() + b" " + msg.data + repr(msg.headers).encode())

    nc = await nats.connect(lab.nats_url.split(","), allow_reconnect=False,
                            **auth.connect_options())  # fmt: skip
    try:
        for kind in ("minion", "beacon", "job", "reactor", "event", "audit"):
            await nc.subscribe(f"hactl.{kind}.>", cb=on_msg)
        await nc.flush()
        (lab.dir / "stats.pw").write_text(new_stats + "\n")
        started = datetime.now(UTC) - timedelta(seconds=1)
        res = await asyncio.to_thread(
            subprocess.run,
            [L.HACTL, "apply", str(L.ROOT / "states"), "--pillar", str(lab.dir / "lab-pillar.yaml"),
             "--timeout", "120", "--json"],
            capture_output=True, text=True, timeout=240, env=lab.cli_env(), check=False,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        assert "rotated" not in res.stdout, "the admin's own report shows the new secret"
        await asyncio.sleep(2)
    finally:
        await nc.close()
    blob = b"\n".join(heard)
    assert b"haproxy.cfg" in blob, "the operator heard the job returns"
    leaked = [n[:6] + "..." for n in needles if n.encode() in blob]
    assert leaked == [], leaked
    audit: list[Event] = []
    bus = await Bus.connect(lab.nats_url, auth, name="trust-audit-reader")
    try:

        async def on_audit(e: Event) -> None:
            audit.append(e)

        await bus.replay("hactl/audit/**", started, on_audit, "HACTL_AUDIT")
        await asyncio.sleep(0.5)
    finally:
        await bus.close()
    admin_key = AuthDir(lab.auth_dir).find(L.LAB_ADMIN).identity.public_key
    assert any(e.tag == f"hactl/audit/{admin_key}/apply" for e in audit), [e.tag for e in audit]
    report(f"trust: apply heard by an operator: {len(heard)} messages, 0 of {len(needles)} "
           f"secrets or hashes; audit record hactl/audit/<{L.LAB_ADMIN} key>/apply stored")  # fmt: skip


async def test_a_revoked_person_is_cut_off_by_a_reload(lab: L.Lab) -> None:
    """Revoke + reload: that person's connection is closed and cannot come back; the master
    and every minion stay connected."""
    auth_dir = AuthDir(lab.auth_dir)
    auth_dir.add_person("temp-operator", "operator")
    L.reload_nats(lab)
    await asyncio.sleep(1)
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    auth = lab.client_auth("temp-operator")
    nc = await nats.connect(lab.nats_url.split(","), allow_reconnect=True,
                            max_reconnect_attempts=2, reconnect_time_wait=0.5,
                            closed_cb=on_closed, **auth.connect_options())  # fmt: skip
    try:
        logs = [lab.dir / "master.log", *(lab.node_dir(n) / "minion.log" for n in lab.net.nodes)]
        marks = {p: len(p.read_text()) for p in logs}
        auth_dir.revoke("temp-operator")
        t0 = time.monotonic()
        L.reload_nats(lab)
        await asyncio.wait_for(closed.wait(), 20)
        cut = time.monotonic() - t0
        await asyncio.sleep(2)
        for p, mark in marks.items():
            assert "nats_disconnected" not in p.read_text()[mark:], p
        for n in lab.net.nodes:
            res = await asyncio.to_thread(
                subprocess.run, [L.HACTL, "ping", n, "--wait", "5"], capture_output=True,
                text=True, timeout=30, env=lab.cli_env(), check=False)  # fmt: skip
            assert res.returncode == 0, res.stderr
    finally:
        await nc.close()
    report(f"trust: revoked person disconnected {cut:.2f} s after the reload; master and "
           f"{len(lab.net.nodes)} minions stayed connected")  # fmt: skip
