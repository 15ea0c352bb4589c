"""Trust III: no identity can make the server store a message on a subject it may not publish
to. Walks the permission table: for every identity, every request it may send (each JetStream
API grant, each event subject whose PubAck comes back) is sent with its reply subject pointed
at every subject a stream or KV bucket captures outside that identity's own publish grants --
the leader key, maintenance windows, leases, approvals, singletons, the view, the reactor's
trail, a lost verdict, another person's audit records -- and nothing is stored there. (In one
account, a direct get answered onto ``$KV.HACTL_LOCKS.<key>`` stored the answer: the streams
now live in their own account, hactl/auth/perms.py.)"""

from __future__ import annotations

import asyncio
import json
import re

import nats.js.errors
import pytest

from hactl.auth.perms import (
    APPROVAL_BUCKET,
    AUDIT_STREAM,
    EVENTS_STREAM,
    LEASE_BUCKET,
    LOCK_BUCKET,
    MAINT_BUCKET,
    SINGLETON_BUCKET,
    VIEW_BUCKET,
    Identity,
    permissions,
)
from hactl.bus import Bus, kv_bucket
from hactl.wire.envelope import encode, new_event
from hactl.wire.tags import subject_matches
from tests.integration.conftest import TEST_MASTERS, NatsHandle
from tests.integration.test_permissions import Conn, _conn

pytestmark = pytest.mark.integration

#: one captured subject per store, and the stream that holds it
TARGETS = {
    f"$KV.{LOCK_BUCKET}.reconciler": f"KV_{LOCK_BUCKET}",
    f"$KV.{MAINT_BUCKET}.maint.ctl2.galera": f"KV_{MAINT_BUCKET}",
    f"$KV.{LEASE_BUCKET}.galera-bootstrap.u.1": f"KV_{LEASE_BUCKET}",
    f"$KV.{APPROVAL_BUCKET}.a1": f"KV_{APPROVAL_BUCKET}",
    f"$KV.{SINGLETON_BUCKET}.lease.svc": f"KV_{SINGLETON_BUCKET}",
    f"$KV.{VIEW_BUCKET}.node.ctl2.galera": f"KV_{VIEW_BUCKET}",
    "hactl.reactor.rule.done": EVENTS_STREAM,
    "hactl.minion.ctl2.lost": EVENTS_STREAM,
    "hactl.beacon.ctl2.vrrp": EVENTS_STREAM,
    "hactl.audit.{other}.fire": AUDIT_STREAM,
}
WALKED = ("ctl1", "operator", "admin")
_WHOLE_API = (
    f"DIRECT.GET.{EVENTS_STREAM}",
    f"STREAM.INFO.{EVENTS_STREAM}",
    "INFO",
    "STREAM.NAMES",
)


def _may_publish(perms: dict[str, object], subject: str) -> bool:
    pub = perms["publish"]
    assert isinstance(pub, dict)
    allow, deny = pub.get("allow", []), pub.get("deny", [])
    return any(subject_matches(a, subject) for a in allow) and not any(
        subject_matches(d, subject) for d in deny
    )


def _requests(perms: dict[str, object], key: str) -> list[str]:
    """A concrete subject for each publish grant that something answers: the JetStream API
    and the stream-captured subjects (their PubAck is the answer)."""
    pub = perms["publish"]
    assert isinstance(pub, dict)
    out = []
    for grant in pub["allow"]:
        if grant.startswith(
            (
                "$JS.API",
                "hactl.beacon",
                "hactl.minion",
                "hactl.job",
                "hactl.event",
                "hactl.audit",
                "$KV.",
            )
        ):
            if grant == "$JS.API.>":  # the whole API: the calls that answer anyone
                out += [
                    f"$JS.API.DIRECT.GET.{EVENTS_STREAM}",
                    f"$JS.API.STREAM.INFO.{EVENTS_STREAM}",
                ]
                out += ["$JS.API.INFO", "$JS.API.STREAM.NAMES"]
                continue
            subject = grant.replace("*", "x").replace(">", "probe.x")
            out.append(subject.replace("DIRECT.GET.probe.x", f"DIRECT.GET.{EVENTS_STREAM}"))
    return sorted(set(out))


async def _last_seq(master: Bus, stream: str, subject: str) -> int:
    """The stream sequence of the last message on ``subject`` (0: none)."""
    try:
        return int((await master.js.get_last_msg(stream, subject)).seq or 0)
    except nats.js.errors.NotFoundError:
        return 0


async def test_no_identity_stores_through_a_reply_subject(nats: NatsHandle) -> None:
    """Every request each identity may send, answered onto every captured subject outside its
    grants: refused or answered elsewhere, never stored (the walk is in docs/security.md)."""
    master = await Bus.connect(nats.url, nats.auth(TEST_MASTERS[0]), name="walk-master")
    conns: dict[str, Conn] = {}
    try:
        for bucket in (LOCK_BUCKET, APPROVAL_BUCKET, SINGLETON_BUCKET):
            await kv_bucket(master, bucket)
        # something for the direct gets to answer with (a 200 as well as 404s)
        await master.persist(new_event("hactl/event/walk", "master", {"x": 1}))
        for name in WALKED:
            conns[name] = await _conn(nats.url, nats.auth(name))
        other = conns["admin"].key  # the operator's target: the admin's audit records
        attempts = 0
        walked: dict[str, list[str]] = {}
        before: dict[str, int] = {}
        for name in WALKED:
            conn = conns[name]
            perms = permissions(Identity(_kind(name), name, conn.key))
            targets = [
                t.replace("{other}", conns["operator"].key if name != "operator" else other)
                for t in TARGETS
            ]
            targets = [t for t in targets if not _may_publish(perms, t)]
            walked[name] = targets
            for target in targets:  # other tests of the session may have written some
                before[target] = await _last_seq(master, _stream_of(target), target)
            body = json.dumps({"last_by_subj": "hactl.event.walk"}).encode()
            for request in _requests(perms, conn.key):
                for target in targets:
                    payload = (
                        encode(new_event("hactl/event/walk", "master", {}))
                        if (request.startswith("hactl."))
                        else body
                    )
                    await conn.nc.publish(request, payload, reply=target)
                    attempts += 1
            await conn.nc.flush(timeout=5)
        await asyncio.sleep(1.0)
        for name, targets in walked.items():
            for target in targets:
                after = await _last_seq(master, _stream_of(target), target)
                assert after == before[target], (name, target)
        assert attempts > 100, attempts
        assert set(walked["ctl1"]) >= {f"$KV.{LOCK_BUCKET}.reconciler", "hactl.minion.ctl2.lost"}
    finally:
        for conn in conns.values():
            await conn.nc.close()
        await master.close()


def _kind(name: str) -> str:
    return {"ctl1": "minion", "operator": "operator", "admin": "admin"}[name]


def _stream_of(subject: str) -> str:
    m = re.match(r"\$KV\.([A-Z_]+)\.", subject)
    if m:
        return f"KV_{m.group(1)}"
    return AUDIT_STREAM if subject.startswith("hactl.audit.") else EVENTS_STREAM
