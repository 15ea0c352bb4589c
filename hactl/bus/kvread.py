"""Reading KV buckets by direct gets only: no consumer is created.

Operators may not create consumers and minions have no JetStream API but one read-only direct
get (hactl/auth/perms.py), so everything a reader needs from a bucket goes through
``$JS.API.DIRECT.GET``: a stream info for the key list, then one last-by-subject get per key.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import nats.errors
import nats.js.errors

from hactl.errors import BusError

if TYPE_CHECKING:
    from hactl.bus.client import Bus

_DELETED = ("DEL", "PURGE")
#: a direct get is answered by one replica of the stream, which the servers choose; one cut
#: off silently (its route not closed yet) never answers. A short wait and another try reach
#: a live one: a master restarted during a partition read its view in 5 s steps instead.
GET_TIMEOUT_S = 1.0
GET_TRIES = 5


async def read_bucket(bus: Bus, bucket: str) -> dict[str, bytes]:
    """Every live key of KV ``bucket`` with its latest value. Raises :class:`BusError` when
    the bucket does not exist or cannot be read."""
    stream = f"KV_{bucket}"
    prefix = f"$KV.{bucket}."
    try:
        info = await bus.js.stream_info(stream, subjects_filter=f"{prefix}>")
    except nats.js.errors.NotFoundError:
        raise BusError(bus.url, f"no KV bucket {bucket}") from None
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        raise BusError(bus.url, f"cannot read KV bucket {bucket} ({exc})") from None
    out: dict[str, bytes] = {}
    for subject in sorted((info.state.subjects or {}) if info.state else {}):
        value = await _last_retried(bus, stream, subject)
        if value is not None:
            out[subject[len(prefix) :]] = value
    return out


async def read_key(bus: Bus, bucket: str, key: str, timeout: float = 2.0) -> bytes | None:
    """The live value of ``key``: None when it was never written, was deleted or purged, or
    expired (the bucket's TTL). Raises :class:`BusError` when the server does not answer
    within ``timeout`` (a refused read gets no answer at all)."""
    try:
        return await asyncio.wait_for(_last(bus, f"KV_{bucket}", f"$KV.{bucket}.{key}"), timeout)
    except TimeoutError:
        raise BusError(
            bus.url,
            f"no answer reading {key} from {bucket} in {timeout:g} s "
            "(not allowed, or JetStream busy)",
        ) from None


async def _last_retried(bus: Bus, stream: str, subject: str) -> bytes | None:
    """:func:`_last`, each try bounded by :data:`GET_TIMEOUT_S`, up to :data:`GET_TRIES`."""
    for _ in range(GET_TRIES - 1):
        with contextlib.suppress(TimeoutError, BusError):
            return await asyncio.wait_for(_last(bus, stream, subject), GET_TIMEOUT_S)
    try:
        return await asyncio.wait_for(_last(bus, stream, subject), GET_TIMEOUT_S)
    except TimeoutError:
        raise BusError(bus.url, f"cannot read {subject} (no answer in {GET_TRIES} tries)") from None


async def _last(bus: Bus, stream: str, subject: str) -> bytes | None:
    try:
        msg = await bus.js.get_last_msg(stream, subject, direct=True)
    except nats.js.errors.NotFoundError:
        return None
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
        raise BusError(bus.url, f"cannot read {subject} ({type(exc).__name__}: {exc})") from None
    if (msg.headers or {}).get("KV-Operation") in _DELETED or not msg.data:
        return None
    return bytes(msg.data)
