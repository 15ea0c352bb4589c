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

from hactl.auth import walk
from hactl.auth.perms import (
    APPROVAL_BUCKET,
    AUDIT_STREAM,
    EVENTS_STREAM,
    JOBS_STREAM,
    LOCK_BUCKET,
    SINGLETON_BUCKET,
    Identity,
    permissions,
)
from hactl.bus import Bus, StreamSettings, ensure_stream, kv_bucket
from hactl.wire.envelope import encode, new_event
from tests.integration.conftest import TEST_MASTERS, NatsHandle
from tests.integration.test_permissions import Conn, _conn

pytestmark = pytest.mark.integration

WALKED = tuple(name for _, name in walk.WALKED)
_WHOLE_API = (
    f"DIRECT.GET.{EVENTS_STREAM}",
    f"STREAM.INFO.{EVENTS_STREAM}",
    "INFO",
    "STREAM.NAMES",
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
    """The walk (hactl/auth/walk.py, printed in docs/security.md): for every identity and every
    subject a stream or KV captures that is not its own grant, a direct publish is refused by
    the server, and every request it may send, answered onto that subject, stores nothing."""
    master = await Bus.connect(nats.url, nats.auth(TEST_MASTERS[0]), name="walk-master")
    conns: dict[str, Conn] = {}
    try:
        await ensure_stream(master, StreamSettings())
        for bucket in (LOCK_BUCKET, APPROVAL_BUCKET, SINGLETON_BUCKET):
            await kv_bucket(master, bucket)
        # something for the direct gets to answer with (a 200 as well as 404s)
        await master.persist(new_event("hactl/event/walk", "master", {"x": 1}))
        for name in WALKED:
            conns[name] = await _conn(nats.url, nats.auth(name))
        attempts, refusals = 0, 0
        walked: dict[str, list[str]] = {}
        before: dict[str, int] = {}
        for kind, name in walk.WALKED:
            conn = conns[name]
            other = conns["admin" if name == "operator" else "operator"].key
            perms = permissions(Identity(kind, name, conn.key))
            refused = [
                t.concrete(conn.key, other)
                for t in walk.TARGETS
                if not walk.cell(kind, name, conn.key, t, other)
            ]
            walked[name] = refused
            for target in refused:  # other tests of the session may have written some
                before[target] = await _last_seq(master, _stream_of(target), target)
            for target in refused:  # the direct publish: a permissions violation
                assert await conn.pub_refused(target), (name, target)
                refusals += 1
            body = json.dumps({"last_by_subj": "hactl.event.walk"}).encode()
            for request in _requests(perms, conn.key):
                for target in refused:
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
        print(
            f"walk: {refusals} direct publishes refused, {attempts} requests answered onto "
            f"{sum(len(t) for t in walked.values())} refused cells, nothing stored"
        )
    finally:
        for conn in conns.values():
            await conn.nc.close()
        await master.close()


def _stream_of(subject: str) -> str:
    m = re.match(r"\$KV\.([A-Z_]+)\.", subject)
    if m:
        return f"KV_{m.group(1)}"
    if subject.startswith("hactl.job."):
        return JOBS_STREAM
    return AUDIT_STREAM if subject.startswith("hactl.audit.") else EVENTS_STREAM
