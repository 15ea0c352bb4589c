"""Stored events by batched direct gets, then live ones: ``hactl events tail --since``.

Direct gets read a stream without creating a consumer, so an operator needs no right to
create one (a push consumer's deliver subject is not checked against its creator's permissions
by nats-server: hactl/auth/perms.py). The stream must allow direct gets (hactl's do).

Order and gaps: the live subscription starts *before* the history is read; live events are held
until the history is exhausted, then released without the ones the history already delivered
(same event id). Nothing between the two is lost and nothing is shown twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from hactl.auth.perms import AUDIT_STREAM, EVENTS_STREAM, JOBS_STREAM
from hactl.errors import BusError, DecodeError
from hactl.wire.envelope import Event, decode
from hactl.wire.tags import TagGlob

if TYPE_CHECKING:
    from hactl.bus.client import Bus

EventHandler = Callable[[Event], Awaitable[None]]
BATCH = 256
ASK_S = 2.0  # one request's wait; a stream electing a leader is asked again until the timeout
_MAX_SEEN = 200_000


def stream_for(glob: TagGlob) -> str:
    """The stream that stores the tags ``glob`` names: the audit trail, the job stream, or
    the events (a glob over every kind, ``hactl/**``, reads the events)."""
    kind = glob.levels[1] if len(glob.levels) > 1 else ""
    return {"audit": AUDIT_STREAM, "job": JOBS_STREAM}.get(kind, EVENTS_STREAM)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _ask(bus: Bus, stream: str, request: dict[str, Any], wait: float) -> list[Msg] | None:
    """One batched direct get on a fresh inbox: its messages up to the end-of-batch or
    not-found marker, or None when nothing answered within ``wait`` (a replica electing)."""
    inbox = bus.nc.new_inbox()
    got: asyncio.Queue[Msg] = asyncio.Queue()

    async def put(msg: Msg) -> None:
        await got.put(msg)

    sub = await bus.nc.subscribe(inbox, cb=put)
    try:
        await bus.nc.publish(
            f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox
        )
        out: list[Msg] = []
        while True:
            try:
                msg = await asyncio.wait_for(got.get(), wait)
            except TimeoutError:
                return out or None  # a batch cut short is continued from its last one
            out.append(msg)
            if (msg.headers or {}).get("Status") in ("204", "404", "503") or not msg.headers:
                return out
    except nats.errors.Error as exc:
        raise BusError(bus.url, f"cannot read stream {stream} ({exc})") from None
    finally:
        await sub.unsubscribe()


#: the first nats-server with batched direct gets by time (``batch``, ``start_time``)
BATCHED_SINCE = (2, 11, 0)


def _server_version(bus: Bus) -> tuple[int, int, int] | None:
    v = bus.nc.connected_server_version
    return (v.major, v.minor, v.patch) if v.major else None


def _silent(bus: Bus, stream: str, timeout: float) -> BusError:
    return BusError(
        bus.url,
        f"stream {stream} did not answer within {timeout:g}s "
        "(does it exist? may this identity read it?)",
    )


async def _batches(
    bus: Bus, stream: str, subject: str, since: datetime, timeout: float
) -> Any:  # an async iterator of stored messages
    version = _server_version(bus)
    if version is not None and version < BATCHED_SINCE:
        async for msg in _singles(bus, stream, subject, since, timeout):
            yield msg
        return
    request: dict[str, Any] = {"start_time": _iso(since), "next_by_subj": subject, "batch": BATCH}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msgs = await _ask(bus, stream, request, min(ASK_S, max(0.05, deadline - loop.time())))
        if msgs is None:
            if loop.time() >= deadline:
                raise _silent(bus, stream, timeout)
            continue
        last, pending = 0, "?"  # "?": no end-of-batch marker came; ask on from the last one
        for msg in msgs:
            headers = msg.headers or {}
            status = headers.get("Status", "")
            if status == "404":
                return  # nothing (more) after the start
            if status == "503" or not headers:
                raise BusError(bus.url, f"stream {stream} does not exist")
            if status == "204":
                pending = headers.get("Nats-Num-Pending", "0")
                break
            if status:
                raise BusError(bus.url, f"reading {stream}: status {status}")
            last = int(headers.get("Nats-Sequence", "0"))
            yield msg
        if pending == "0" or (last == 0 and pending != "?"):
            return
        request = {"seq": last + 1, "next_by_subj": subject, "batch": BATCH}
        deadline = loop.time() + timeout


async def _one(bus: Bus, stream: str, request: dict[str, Any], timeout: float) -> Msg | None:
    """One plain direct get (every server since 2.9): the message, or None when there is
    none at or after the requested sequence."""
    try:
        msg = await bus.nc.request(
            f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), timeout=timeout
        )
    except (nats.errors.TimeoutError, TimeoutError):
        raise _silent(bus, stream, timeout) from None
    except nats.errors.NoRespondersError:
        raise BusError(bus.url, f"stream {stream} does not exist") from None
    except nats.errors.Error as exc:
        raise BusError(bus.url, f"cannot read stream {stream} ({exc})") from None
    status = (msg.headers or {}).get("Status", "")
    if status == "404":
        return None
    if status:
        raise BusError(bus.url, f"reading {stream}: status {status}")
    return msg


async def _singles(
    bus: Bus, stream: str, subject: str, since: datetime, timeout: float
) -> AsyncIterator[Msg]:
    """The stored messages on ``subject`` from ``since`` on, for servers before 2.11 (Debian
    12's 2.9.10): the first sequence at or after ``since`` found by bisection over plain
    direct gets (about 20 of them for a million messages), then one get per message."""
    try:
        info = await bus.js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        raise BusError(bus.url, f"stream {stream} does not exist") from None
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
        raise BusError(bus.url, f"cannot read stream {stream} ({exc})") from None
    state = info.state
    lo, hi = int(state.first_seq), int(state.last_seq) + 1
    while lo < hi:
        mid = (lo + hi) // 2
        msg = await _one(bus, stream, {"seq": mid, "next_by_subj": ">"}, timeout)
        if msg is None:
            hi = mid
            continue
        seq = int((msg.headers or {}).get("Nats-Sequence", mid))
        if _stored_at(msg) < since:
            lo = seq + 1
        else:
            hi = mid
    seq = lo
    while True:
        msg = await _one(bus, stream, {"seq": seq, "next_by_subj": subject}, timeout)
        if msg is None:
            return
        yield msg
        seq = int((msg.headers or {}).get("Nats-Sequence", seq)) + 1


async def replay(
    bus: Bus,
    glob: TagGlob,
    since: datetime,
    handler: EventHandler,
    stream: str,
    timeout: float = 5.0,
) -> list[Subscription]:
    """Stored events matching ``glob`` from ``since`` on, in stream order, then live ones.
    Returns the live subscriptions. Raises :class:`BusError` when the stream cannot be read."""
    held: list[Event] = []
    live = False

    async def hold_or_pass(event: Event) -> None:
        if live:
            await handler(event)
        else:
            held.append(event)

    subs = await bus.subscribe(glob, hold_or_pass)
    seen: set[str] = set()
    try:
        async for msg in _batches(bus, stream, glob.subject(), since, timeout):
            event = _decoded(bus, msg, glob)
            if event is None:
                continue
            if len(seen) < _MAX_SEEN:
                seen.add(event.id)
            await handler(event)
    except BaseException:
        for s in subs:
            await s.unsubscribe()
        raise
    live = True
    for event in held:
        if event.id not in seen:
            await handler(event)
    held.clear()
    return subs


async def stored(
    bus: Bus,
    glob: TagGlob,
    since: datetime,
    stream: str,
    timeout: float = 5.0,
    until: datetime | None = None,
) -> list[Event]:
    """Only the stored events matching ``glob`` from ``since`` on (to ``until``, by the time
    the stream stored them), in stream order (no live part: ``hactl history``, ``hactl
    why``). Raises :class:`BusError` when the stream cannot be read."""
    out: list[Event] = []
    async for msg in _batches(bus, stream, glob.subject(), since, timeout):
        if until is not None and _stored_at(msg) > until:
            break
        if (event := _decoded(bus, msg, glob)) is not None:
            out.append(event)
    return out


async def scan(
    bus: Bus,
    glob: TagGlob,
    since: datetime,
    until: datetime,
    stream: str,
    keep: Callable[[bytes], bool],
    timeout: float = 5.0,
) -> AsyncIterator[Event]:
    """Stored events matching ``glob`` from ``since`` to ``until``, in stream order, decoded
    only when ``keep(payload)`` says so (a cheap look at the raw bytes first: ``hactl why``
    keeps what names an id of its chain and skips the rest of a busy stream undecoded)."""
    async for msg in _batches(bus, stream, glob.subject(), since, timeout):
        if _stored_at(msg) > until:
            return
        if keep(msg.data) and (event := _decoded(bus, msg, glob)) is not None:
            yield event


async def find(
    bus: Bus,
    event_id: str,
    since: datetime,
    until: datetime,
    stream: str,
    timeout: float = 5.0,
) -> Event | None:
    """The stored event with ``event_id`` between ``since`` and ``until`` (stored time), or
    None: read in stream order and stopped at the match (``hactl why``'s cause)."""
    want = event_id.encode()  # msgpack keeps the id's bytes: only a message naming it decodes
    async for event in scan(
        bus, TagGlob.parse("hactl/**"), since, until, stream, lambda raw: want in raw, timeout
    ):
        if event.id == event_id:
            return event
    return None


def _stored_at(msg: Msg) -> datetime:
    """When the stream stored ``msg`` (its ``Nats-Time-Stamp``, RFC 3339 in nanoseconds)."""
    text = (msg.headers or {}).get("Nats-Time-Stamp", "")
    head, _, frac = text.rstrip("Z").partition(".")
    try:
        return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)


def _decoded(bus: Bus, msg: Msg, glob: TagGlob) -> Event | None:
    """The stored message as an event matching ``glob``; None (a refused one is counted, not
    logged: every reader of the history would log the same old garbage again)."""
    subject = (msg.headers or {}).get("Nats-Subject", "")
    try:
        event = decode(msg.data, subject)
    except DecodeError as exc:
        bus.rejects.count(exc)
        return None
    return event if glob.match(event.tag) else None
