"""JetStream: the ``HACTL_EVENTS`` and ``HACTL_JOBS`` streams (created/updated idempotently),
the audit stream and KV buckets."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.js import api

from hactl.auth.perms import AUDIT_STREAM, EVENTS_STREAM, JOBS_STREAM
from hactl.bus.client import Bus
from hactl.bus.kv import Kv, NoBucket
from hactl.errors import BusError, JetStreamBusy
from hactl.log import get_logger
from hactl.wire.envelope import MAX_EVENT_BYTES
from hactl.wire.tags import AUDIT_SUBJECTS, JOB_SUBJECTS, STREAM_SUBJECTS

log = get_logger("hactl.bus")
T = TypeVar("T")

# what JetStream answers while it elects a leader (a cluster that just started, a server that
# died, a stream or bucket whose raft group is new): worth waiting out, not an error yet
JETSTREAM_BUSY = (
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    TimeoutError,
    nats.js.errors.ServiceUnavailableError,
)


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Limits of the event stream; defaults keep a week or 1 GiB, whichever is hit first."""

    name: str = EVENTS_STREAM
    max_age_s: float = 7 * 86400.0
    max_bytes: int = 1024**3
    replicas: int = 1
    duplicate_window_s: float = 120.0
    #: a subject (one minion's one beacon) keeps at most this many events, so one identity
    #: flooding its own subjects cannot push everyone else's history out by count
    max_msgs_per_subject: int = 200_000
    #: the job stream's own byte cap (``hactl/job/**``): a minion flooding job returns
    #: (every job id a new subject) fills this one and pushes out job returns only
    jobs_max_bytes: int = 256 * 1024**2

    def config(self) -> api.StreamConfig:
        """The JetStream stream config for these settings."""
        return self._config(self.name, "hactl events (DESIGN.md wire format)", STREAM_SUBJECTS)

    def jobs_config(self) -> api.StreamConfig:
        """The job stream's config: the events' limits but its own byte cap."""
        return dataclasses.replace(
            self._config(JOBS_STREAM, "hactl job announcements and returns", JOB_SUBJECTS),
            max_bytes=self.jobs_max_bytes,
        )

    def _config(self, name: str, what: str, subjects: tuple[str, ...]) -> api.StreamConfig:
        return api.StreamConfig(
            name=name,
            description=what,
            subjects=list(subjects),
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            max_age=self.max_age_s,
            max_bytes=self.max_bytes,
            max_msg_size=MAX_EVENT_BYTES + 4096,  # room for headers
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window_s,
            discard=api.DiscardPolicy.OLD,
            allow_direct=True,  # operators read history by direct get, never by a consumer
            max_msgs_per_subject=self.max_msgs_per_subject,
        )


async def audit_usage(bus: Bus) -> tuple[int, int] | None:
    """(bytes stored, byte cap) of the audit stream; None when it has no cap or is missing."""
    info = await _stream_info(bus, AUDIT_STREAM)
    if info is None or info.state is None or not (info.config.max_bytes or 0) > 0:
        return None
    return int(info.state.bytes), int(info.config.max_bytes or 0)


async def storage_cap(bus: Bus, timeout: float = 3.0) -> int | None:
    """The byte cap on file storage of the account JetStream answers for through ``bus`` (the
    store account, through the user account's import); None when it has none. BusError when
    JetStream does not answer."""
    try:
        info = await asyncio.wait_for(bus.js.account_info(), timeout)
    except (nats.js.errors.Error, nats.errors.Error, TimeoutError) as exc:
        raise BusError(bus.url, f"JetStream does not answer ({type(exc).__name__})") from None
    cap = info.limits.max_storage
    return cap if cap is not None and cap >= 0 else None


async def _stream_info(bus: Bus, name: str) -> api.StreamInfo | None:
    """The stream's info, None if it does not exist; waits out a cluster that just started."""
    for attempt in range(10):  # a NATS cluster that just started may still elect its leader
        try:
            # 2 s, not nats-py's 5: a request that reached a server just cut off is retried
            return await asyncio.wait_for(bus.js.stream_info(name), 2.0)
        except nats.js.errors.NotFoundError:
            return None
        except JETSTREAM_BUSY:
            if attempt == 9:
                what = f"JetStream did not answer for stream {name}"
                raise JetStreamBusy(bus.url, what) from None
            await asyncio.sleep(0.3)
    return None


async def ensure_stream(bus: Bus, settings: StreamSettings) -> api.StreamInfo:
    """Create the stream, or update it when its limits differ; idempotent. The event stream
    comes with the job stream (same limits, its own byte cap). Returns the first's info."""
    info = await _ensure(bus, settings.config())
    if settings.name == EVENTS_STREAM:
        await _ensure(bus, settings.jobs_config())
    return info


async def _ensure(bus: Bus, wanted: api.StreamConfig) -> api.StreamInfo:
    name = str(wanted.name)
    info = await _stream_info(bus, name)
    if info is None:
        try:
            return await bus.js.add_stream(wanted)
        except nats.js.errors.APIError as exc:
            raise BusError(bus.url, f"cannot create stream {name}: {exc.description}") from None
        except (nats.errors.TimeoutError, TimeoutError):
            raise JetStreamBusy(
                bus.url,
                f"no answer creating stream {name} (streams are a master's to create;"
                " or JetStream is busy)",
            ) from None
    have = info.config
    if (
        sorted(have.subjects or []) != sorted(wanted.subjects or [])
        or have.max_age != wanted.max_age
        or have.max_bytes != wanted.max_bytes
        or have.max_msg_size != wanted.max_msg_size
        or have.duplicate_window != wanted.duplicate_window
        or have.num_replicas != wanted.num_replicas
        or have.allow_direct != wanted.allow_direct
        or have.max_msgs_per_subject != wanted.max_msgs_per_subject
    ):
        try:
            return await bus.js.update_stream(wanted)
        except nats.js.errors.APIError as exc:
            raise BusError(bus.url, f"cannot update stream {name}: {exc.description}") from None
    return info


#: the audit trail's byte cap: full, it refuses new records (an action that cannot be audited
#: is not taken) and the master alerts (``hactl/event/alert/audit_stream_full``)
AUDIT_MAX_BYTES = 256 * 1024**2


def audit_config(
    replicas: int = 1, max_age_s: float = 400 * 86400.0, max_bytes: int = AUDIT_MAX_BYTES
) -> api.StreamConfig:
    """The audit trail: every person's action, kept ~13 months; nobody can delete or purge a
    record (``deny_delete``/``deny_purge`` cannot be turned off later, and the permission
    table denies every identity the stream's delete, purge, update and restore). It holds at
    most ``max_bytes`` and then refuses new records (``discard: new``): it never drops an
    old record silently and cannot fill the server's disk."""
    return api.StreamConfig(
        name=AUDIT_STREAM,
        description="hactl audit trail: hactl/audit/<identity key>/<action>",
        subjects=list(AUDIT_SUBJECTS),
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        max_age=max_age_s,
        max_msg_size=MAX_EVENT_BYTES + 4096,
        num_replicas=replicas,
        deny_delete=True,
        deny_purge=True,
        allow_direct=True,
        max_bytes=max_bytes,
        discard=api.DiscardPolicy.NEW,
    )


async def ensure_audit_stream(
    bus: Bus, replicas: int = 1, max_bytes: int = AUDIT_MAX_BYTES
) -> None:
    """Create the audit stream if it is missing (never updated: nobody may)."""
    if await _stream_info(bus, AUDIT_STREAM) is not None:
        return
    try:
        await bus.js.add_stream(audit_config(replicas, max_bytes=max_bytes))
    except nats.js.errors.APIError as exc:
        raise BusError(bus.url, f"cannot create stream {AUDIT_STREAM}: {exc.description}") from None


#: what JetStream says while a cluster is still forming (a replicated bucket cannot be placed
#: until its peers have joined): retried for FORMING_WAIT seconds, not fatal at once
FORMING = ("no suitable peers", "peer offline", "insufficient resources")
FORMING_WAIT = 30.0


#: one attempt to bind an existing bucket, and how long they are repeated in place: a bucket
#: whose raft group lost its leader with a server answers only once the group has elected
#: again (seconds). The default JetStream timeout (5 s) noticed that late and the master's
#: start then began again on a new connection: a restart right after its server's node was
#: cut off was ready 13.3 s after the stop instead of 7.5 s (the lab's singleton test). Not
#: for much longer than the old timeout: a connection to a server that is itself cut off never
#: gets an answer, and the start's retry on a new connection is what helps then
BIND_ATTEMPT = 1.0
BIND_PATIENCE = 6.0


async def kv_bucket(
    bus: Bus, bucket: str, *, history: int = 1, ttl_s: float | None = None, replicas: int = 1
) -> Kv:
    """Bind to a KV bucket, creating it on first use. Binding is retried in place for
    :data:`BIND_PATIENCE` while JetStream does not answer (then :class:`JetStreamBusy`)."""
    deadline = time.monotonic() + BIND_PATIENCE
    while True:
        try:
            return await bind_bucket(bus, bucket, attempt=BIND_ATTEMPT)
        except NoBucket:
            break
        except JetStreamBusy:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.1)  # no responders answers at once: do not spin
    config = api.KeyValueConfig(
        bucket=bucket, history=history, ttl=ttl_s, replicas=replicas, direct=True
    )
    deadline = time.monotonic() + FORMING_WAIT
    timeouts = 0
    while True:  # a fresh cluster may still be forming, or electing the bucket's raft group
        try:
            return Kv(bus.url, bucket, await bus.js.create_key_value(config))
        except nats.js.errors.APIError as exc:
            detail = f"cannot create KV bucket {bucket}: {exc.description}"
            forming = any(w in str(exc.description).lower() for w in FORMING)
            if not forming or time.monotonic() > deadline:
                raise BusError(bus.url, detail) from None
            await asyncio.sleep(0.5)  # the other servers of the cluster are still joining
        except (nats.errors.TimeoutError, TimeoutError):
            timeouts += 1
            if timeouts == 4:
                raise JetStreamBusy(bus.url, f"creating KV bucket {bucket} timed out") from None
        with contextlib.suppress(NoBucket, BusError):
            return await bind_bucket(bus, bucket)  # it may have been created after all


async def bind_bucket(bus: Bus, bucket: str, attempt: float | None = None) -> Kv:
    """An existing KV bucket (:class:`NoBucket` when there is none: masters create them);
    :class:`JetStreamBusy` when JetStream does not answer (within ``attempt`` s when given)."""
    try:
        return Kv(bus.url, bucket, await asyncio.wait_for(bus.js.key_value(bucket), attempt))
    except nats.js.errors.BucketNotFoundError:
        raise NoBucket(bus.url, bucket) from None
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError):
        raise JetStreamBusy(bus.url, f"JetStream did not answer for KV bucket {bucket}") from None
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        raise BusError(bus.url, f"cannot bind KV bucket {bucket} ({exc})") from None


async def patient(
    call: Callable[[], Awaitable[T]], what: str, wait: float = 60.0, url: str = ""
) -> T:
    """``call()``, retried while JetStream is busy (:data:`JETSTREAM_BUSY`), bounded by
    ``wait``; then one clear :class:`JetStreamBusy` naming ``what``."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return await call()
        except JETSTREAM_BUSY as exc:
            if time.monotonic() >= deadline:
                raise JetStreamBusy(
                    url, f"{what}: JetStream did not answer within {wait:g}s ({type(exc).__name__})"
                ) from None
            log.info("jetstream_busy_retrying", what=what, error=type(exc).__name__)
            await asyncio.sleep(0.5)
