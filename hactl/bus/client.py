"""The async NATS client wrapper every hactl process uses.

- :meth:`Bus.connect` is bounded by a timeout (nats-py's first connect can otherwise retry for
  a long time); later disconnects reconnect in the background for daemons.
- Events are decoded strictly before a handler sees them; a rejected message is counted by
  reason and logged (rate-limited), never raised into the subscription.
- Commands are request/reply on ``hactl.cmd.<id>`` with a ``jid``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from hactl.auth.client import ClientAuth
from hactl.bus import history, kvread
from hactl.bus.inbound import Inbound, untrusted_request
from hactl.bus.rejects import RejectStats
from hactl.bus.tls import abort_on_close
from hactl.errors import (
    BusError,
    CommandError,
    DecodeError,
    HactlError,
    PermissionRefused,
    RejectReason,
)
from hactl.log import get_logger
from hactl.wire import commands as wcmd
from hactl.wire.envelope import Event, decode, encode, new_event
from hactl.wire.tags import TagGlob, audit_tag, command_subject

log = get_logger("hactl.bus")

EventHandler = Callable[[Event], Awaitable[None]]
CommandHandler = Callable[[wcmd.CommandRequest], Awaitable[wcmd.CommandReply]]


SERVE_CONCURRENCY = 16
#: one connection attempt (TCP + TLS to one server of the list); the whole first connect is
#: bounded by ``timeout``. A silently partitioned server never answers, so every reconnect
#: that picks it first loses this much before it tries the next.
ATTEMPT_TIMEOUT_S = 1.0


def _server_of(ref: list[Client]) -> str:
    """host:port of the server a client is connected to ('' when unknown)."""
    url = ref[0].connected_url if ref else None
    return f"{url.hostname}:{url.port}" if url is not None else ""


class Bus:
    """A connected NATS client speaking hactl's wire format."""

    def __init__(self, nc: Client, url: str) -> None:
        self.nc = nc
        self.url = url
        self.js: JetStreamContext = nc.jetstream()
        self.rejects = RejectStats()
        self._closing: list[bool] = []
        self._errors: list[str] = []
        self.identity = ""  # the nkey public key this connection authenticated with

    @property
    def server_errors(self) -> list[str]:
        """The last asynchronous errors the server sent this connection (a refused publish is
        one: ``Permissions Violation for Publish to ...``), oldest first."""
        return list(self._errors)

    @classmethod
    async def connect(
        cls,
        url: str,
        auth: ClientAuth,
        *,
        name: str = "hactl",
        timeout: float = 3.0,
        reconnect: bool = False,
        announce: bool = False,
    ) -> Bus:
        """Connect as ``auth``'s identity, over verified TLS, within ``timeout`` seconds or raise
        :class:`BusError`. A dead or partitioned server is noticed within 1.5-2 s (a PING
        every 0.5 s, three unanswered) and the client moves to another member of ``url``.

        ``reconnect=True`` (daemons) keeps reconnecting after a later loss of the server;
        the *first* connect is bounded either way. ``announce=True`` (the master, a minion)
        logs which server of the cluster it uses.
        """
        last_error: list[str] = []
        closing: list[bool] = []  # set by close(): our own disconnect is not news
        nc_ref: list[Client] = []

        async def on_error(exc: Exception) -> None:
            last_error.append(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            del last_error[:-50]
            log.debug("nats_error", url=url, error=last_error[-1])

        async def on_disconnect() -> None:
            if not closing:
                log.warning("nats_disconnected", url=url)

        async def on_reconnect() -> None:
            log.info("nats_reconnected", url=url, server=_server_of(nc_ref))

        abort_on_close()  # once per process, before its first connection
        options = auth.connect_options()  # ConfigError on unreadable credentials: not retried
        connect = nats.connect(
            **options,
            servers=[u.strip() for u in url.split(",") if u.strip()],  # a cluster: a,b,c
            name=name,
            connect_timeout=min(timeout, ATTEMPT_TIMEOUT_S),  # per server: a dead one is left fast
            allow_reconnect=reconnect,
            max_reconnect_attempts=-1 if reconnect else 0,
            reconnect_time_wait=0.5,
            error_cb=on_error,
            disconnected_cb=on_disconnect if reconnect else None,
            reconnected_cb=on_reconnect if reconnect else None,
        )
        try:
            nc = await asyncio.wait_for(connect, timeout)
        except TimeoutError:
            why = last_error[-1] if last_error else "no answer"
            raise BusError(url, f"not reachable within {timeout:g}s ({why})") from None
        except (OSError, nats.errors.Error) as exc:
            why = last_error[-1] if last_error else f"{type(exc).__name__}: {exc}"
            raise BusError(url, f"cannot connect ({why})") from None
        nc_ref.append(nc)
        if announce:
            log.info("nats_connected", url=url, server=_server_of(nc_ref))
        bus = cls(nc, url)
        bus.identity = auth.public_key()
        bus._closing = closing
        bus._errors = last_error
        return bus

    async def close(self, drain: bool = True) -> None:
        """Flush and close; never raises. ``drain=False``: close at once (a reader that was
        interrupted has nothing to flush, and Ctrl-C must not wait seconds for a drain)."""
        self._closing.append(True)
        if drain:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 5.0)
        with contextlib.suppress(Exception):  # bounded: with every server gone it may wait on
            await asyncio.wait_for(self.nc.close(), 2.0)  # the reconnect loop (lab teardown)

    async def sync(self, timeout: float = 5.0) -> None:
        """Return once the server has processed everything this client sent before the call.

        nats-py's ``flush()`` writes its PING straight to the socket while a SUB or PUB may
        still wait in the client's pending buffer, so one flush can come back before the server
        has the subscription (a request right after ``serve`` then met "no responders" in a
        loaded CI run). The first flush makes the flusher write the buffer; the second PING
        follows it on the wire, and the server answers a connection's commands in order.
        """
        try:
            await self.nc.flush(timeout=max(1, int(timeout)))
            await self.nc.flush(timeout=max(1, int(timeout)))
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusError(self.url, f"no PONG within {timeout:g}s ({exc})") from None

    # -- events -------------------------------------------------------------------------

    async def publish(self, event: Event, msg_id: str | None = None) -> None:
        """Fire-and-forget publish (the stream still captures it if the server has it).

        With ``msg_id`` (``Nats-Msg-Id``) the stream stores one copy however often it is sent.
        """
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        await self.nc.publish(event.subject, encode(event), headers=headers)

    async def persist(self, event: Event, timeout: float = 5.0) -> int:
        """Publish through JetStream and wait for the stored ack; returns the stream sequence.

        The event id is the ``Nats-Msg-Id``, so a retried publish is stored once: an ack that
        does not come within ``timeout`` (a stream leader being elected, a loaded server) is
        asked for once more by publishing again before the failure is raised.
        """
        try:
            return await self._persist_once(event, timeout)
        except BusError as exc:
            if "did not ack" not in exc.detail:
                raise
            log.warning("jetstream_ack_late", subject=event.subject, id=event.id)
            return await self._persist_once(event, timeout)

    async def _persist_once(self, event: Event, timeout: float) -> int:
        try:
            ack = await self.js.publish(
                event.subject, encode(event), timeout=timeout, headers={"Nats-Msg-Id": event.id}
            )
        except (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError):
            # 503: no stream captures the subject, or its leader is being elected right now
            raise BusError(
                self.url, f"no JetStream stream answered for {event.subject} (none, or electing)"
            ) from None
        except (nats.errors.TimeoutError, TimeoutError):
            raise self._refusal(event.subject) or BusError(
                self.url, f"JetStream did not ack within {timeout:g}s"
            ) from None
        except nats.js.errors.APIError as exc:
            raise BusError(self.url, f"JetStream refused the event: {exc.description}") from None
        except nats.errors.Error as exc:  # reconnecting, closed, buffer full, ...: retryable
            why = str(exc) or type(exc).__name__
            raise BusError(self.url, f"cannot publish to JetStream ({why})") from None
        return int(ack.seq)

    async def audit(self, action: str, data: dict[str, Any]) -> None:
        """Record a person's action in the audit stream, under the key the server checked
        (``hactl/audit/<key>/<action>``). Raises :class:`BusError` if it cannot be stored:
        an action that cannot be audited is not taken."""
        await self.persist(new_event(audit_tag(self.identity, action), self.identity, data))

    def _refusal(self, subject: str) -> PermissionRefused | None:
        """The server's permission violation for ``subject``, if it reported one."""
        for err in reversed(self._errors[-20:]):
            if "permissions violation" in err.lower() and subject.lower() in err.lower():
                return PermissionRefused(self.url, subject)
        return None

    def _dispatcher(self, glob: TagGlob, handler: EventHandler) -> Callable[[Msg], Awaitable[None]]:
        async def on_msg(msg: Msg) -> None:
            try:
                event = decode(msg.data, msg.subject)
            except DecodeError as exc:
                self.rejects.reject(exc, msg.subject)
                return
            if not glob.match(event.tag):
                return
            try:
                await handler(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.rejects.handler_errors += 1
                log.exception("event_handler_failed", tag=event.tag, id=event.id)

        return on_msg

    async def subscribe(
        self, glob: str | TagGlob, handler: EventHandler, queue: str = ""
    ) -> list[Subscription]:
        """Live events whose tag matches ``glob`` (core NATS: from now on).

        One NATS subscription per event kind the glob can match, never ``hactl.cmd.*``.
        """
        compiled = glob if isinstance(glob, TagGlob) else TagGlob.parse(glob)
        dispatch = self._dispatcher(compiled, handler)
        subs = [
            await self.nc.subscribe(subject, queue=queue, cb=dispatch)
            for subject in compiled.subjects()
        ]
        await self.sync()  # interest is registered on the server when this returns
        return subs

    async def subscribe_subjects(
        self, subject: str, handler: Callable[[str], Awaitable[None]]
    ) -> Subscription:
        """Hear only the subjects of messages on ``subject`` (a NATS filter): nothing is
        decoded (what a rate count needs, at a flood's rate)."""

        async def on_msg(msg: Msg) -> None:
            await handler(msg.subject)

        sub = await self.nc.subscribe(subject, cb=on_msg)
        await self.sync()
        return sub

    async def purge(self, stream: str, subject: str, keep: int) -> None:
        """Purge ``stream``'s messages on ``subject`` (a filter) but the newest ``keep``."""
        try:
            await self.js.purge_stream(stream, subject=subject, keep=keep)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            raise BusError(self.url, f"cannot purge {subject} from {stream}: {exc}") from None

    async def replay(
        self,
        glob: str | TagGlob,
        since: datetime,
        handler: EventHandler,
        stream: str,
        wait: float = 10.0,
    ) -> list[Subscription]:
        """Stored events from ``since`` onwards, then live ones, in order and without a
        consumer (hactl/bus/history.py). Raises :class:`BusError` if ``stream`` cannot be read
        within ``wait`` seconds."""
        compiled = glob if isinstance(glob, TagGlob) else TagGlob.parse(glob)
        return await history.replay(self, compiled, since, handler, stream, timeout=wait)

    async def read_bucket(self, bucket: str) -> dict[str, bytes]:
        """Every live key of KV ``bucket`` (hactl/bus/kvread.py: direct gets, no consumer)."""
        return await kvread.read_bucket(self, bucket)

    async def read_key(self, bucket: str, key: str) -> bytes | None:
        """The live value of one key, or None (absent or deleted): one direct get."""
        return await kvread.read_key(self, bucket, key)

    # -- commands -----------------------------------------------------------------------

    async def request(
        self,
        target: str,
        cmd: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float = 5.0,
        sender: str = "cli",
        jid: str | None = None,
    ) -> wcmd.CommandReply:
        """Send one command and wait for its reply; raises :class:`CommandError` on no answer."""
        req = wcmd.CommandRequest(
            cmd=cmd, args=args or {}, sender=sender, **({"jid": jid} if jid else {})
        )
        try:
            msg = await self.nc.request(
                command_subject(target), wcmd.encode_request(req), timeout=timeout
            )
        except nats.errors.NoRespondersError:
            raise CommandError(
                target, cmd, "nobody serves it (is it running?)", kind="unanswered"
            ) from None
        except (nats.errors.TimeoutError, TimeoutError):
            refused = self._refusal(command_subject(target))
            raise CommandError(
                target,
                cmd,
                str(refused) if refused else f"no reply within {timeout:g}s",
                kind="refused" if refused else "timed out",
            ) from None
        try:
            return wcmd.decode_reply(msg.data)
        except DecodeError as exc:
            raise CommandError(target, cmd, f"unreadable reply: {exc.detail}") from None

    async def serve(self, target: str, handler: CommandHandler) -> Subscription:
        """Answer commands on ``hactl.cmd.<target>``; a bad request gets an error reply.

        Each request runs in its own task: a slow command (a Galera joiner waiting to be
        Synced) never holds up a quick one (an HAProxy runtime change) behind it.
        """
        running: set[asyncio.Task[None]] = set()
        gate = asyncio.Semaphore(SERVE_CONCURRENCY)

        async def on_msg(msg: Msg) -> None:
            await gate.acquire()  # a flood of commands queues here, not in the daemons
            task = asyncio.create_task(answer(msg))
            running.add(task)
            task.add_done_callback(running.discard)
            task.add_done_callback(lambda _: gate.release())

        async def answer(msg: Msg) -> None:
            why = untrusted_request(msg.reply, msg.headers)
            if why:  # the server delivered it, no master or admin sent it: refuse, no reply
                self.rejects.reject(DecodeError(RejectReason.UNTRUSTED, why), msg.subject)
                return
            try:
                req = wcmd.decode_request(msg.data)
            except DecodeError as exc:
                self.rejects.reject(exc, msg.subject)
                if msg.reply:
                    await msg.respond(
                        wcmd.encode_reply(wcmd.error_reply("", "DecodeError", str(exc)))
                    )
                return
            try:
                reply = await handler(req)
            except HactlError as exc:
                reply = wcmd.error_reply(req.jid, type(exc).__name__, str(exc))
            except Exception as exc:
                log.exception("command_failed", cmd=req.cmd, jid=req.jid)
                reply = wcmd.error_reply(req.jid, type(exc).__name__, str(exc))
            if msg.reply:
                await msg.respond(wcmd.encode_reply(reply))

        sub = await self.nc.subscribe(command_subject(target), cb=on_msg)
        await self.sync()  # the server knows about us before we say we are serving
        return sub

    # -- raw request/reply (payloads another wire contract encodes) ---------------------------

    async def request_raw(self, subject: str, data: bytes, timeout: float) -> bytes:
        """One request whose payload a wire contract other than commands encodes (the
        singleton renewals); :class:`BusError` when nobody answers in time."""
        try:
            msg = await self.nc.request(subject, data, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise BusError(self.url, f"nobody answers on {subject}") from None
        except (nats.errors.TimeoutError, TimeoutError):
            raise BusError(self.url, f"no answer on {subject} within {timeout:g} s") from None
        except nats.errors.Error as exc:
            raise BusError(self.url, f"cannot ask on {subject} ({exc})") from None
        return bytes(msg.data)

    async def answer(
        self, subject: str, handler: Callable[[Inbound], Awaitable[bytes | None]]
    ) -> Subscription:
        """Answer requests on ``subject`` (a NATS filter) with what ``handler`` returns (None:
        no answer). The handler judges who sent it (:func:`untrusted_request`)."""

        async def on_msg(msg: Msg) -> None:
            inbound = Inbound(msg.subject, bytes(msg.data), msg.reply or "", msg.headers)
            reply = await handler(inbound)
            if reply is not None and msg.reply:
                with contextlib.suppress(nats.errors.Error):
                    await msg.respond(reply)

        sub = await self.nc.subscribe(subject, cb=on_msg)
        await self.sync()
        return sub

    async def stream_state(self, stream: str) -> tuple[int, int]:
        """(messages, bytes) stored in ``stream``; :class:`BusError` when unreadable."""
        try:
            info = await self.js.stream_info(stream)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            raise BusError(self.url, f"cannot read stream {stream} ({exc})") from None
        state = info.state
        return (int(state.messages), int(state.bytes)) if state is not None else (0, 0)
