"""Shared JetStream push consumers: how every master takes its share of the stored events.

A consumer lives in the store account; masters bind it as a queue group on a fixed deliver
subject (hactl/auth/perms.py), ack explicitly and say "in progress" while an event's work
outlasts the ack wait. Each delivery reaches its handler as a :class:`Delivery`, which
speaks hactl's terms (how often delivered, when stored) and never raises on ack.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors
from nats.js import api

from hactl.bus.jetstream import patient
from hactl.errors import BusError, HactlError
from hactl.log import get_logger

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from hactl.bus.client import Bus

log = get_logger("hactl.bus")


def delivered(reply: str) -> int:
    """How many times JetStream has delivered this message, from its ack subject (0 if that
    is not one). ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``, or
    with ``<domain>.<account hash>`` after ``$JS.ACK`` and a token at the end (v2). nats-py's
    ``msg.metadata`` parses every field (3 % of the reactor's time); this needs one."""
    tokens = reply.split(".")
    if len(tokens) < 9 or tokens[0] != "$JS" or tokens[1] != "ACK":
        return 0
    token = tokens[4] if len(tokens) == 9 else tokens[6]
    return int(token) if token.isdigit() else 0


class Delivery:
    """One stored message delivered by a consumer."""

    __slots__ = ("_msg",)

    def __init__(self, msg: Msg) -> None:
        self._msg = msg

    @property
    def subject(self) -> str:
        """The subject it was stored on."""
        return str(self._msg.subject)

    @property
    def data(self) -> bytes:
        """The stored payload."""
        return bytes(self._msg.data)

    @property
    def delivered(self) -> int:
        """1 for a first delivery, more for a redelivery (0 if unknown)."""
        return delivered(self._msg.reply or "")

    @property
    def stored(self) -> float | None:
        """When the stream stored it (server time), None if unknown."""
        try:
            return float(self._msg.metadata.timestamp.timestamp())
        except (ValueError, TypeError, AttributeError, IndexError):
            return None

    async def ack(self) -> None:
        """Done with it (a lost ack means one redelivery, which handlers tolerate)."""
        with contextlib.suppress(Exception):
            await self._msg.ack()

    async def nak(self, delay: float) -> None:
        """Deliver it again after ``delay`` seconds."""
        with contextlib.suppress(Exception):
            await self._msg.nak(delay=delay)

    async def term(self) -> None:
        """Never deliver it again (unreadable, or a poison event)."""
        with contextlib.suppress(Exception):
            await self._msg.term()

    async def in_progress(self) -> None:
        """Still being worked on: restart the ack wait."""
        with contextlib.suppress(Exception):
            await self._msg.in_progress()


@dataclass(frozen=True, slots=True)
class SharedConsumer:
    """A durable push consumer every master binds as one queue group."""

    stream: str
    durable: str
    deliver: str
    ack_wait: float
    max_ack_pending: int

    def config(self) -> api.ConsumerConfig:
        """Unfiltered, explicit acks, new messages only, to the fixed deliver subject."""
        return api.ConsumerConfig(
            durable_name=self.durable,
            deliver_group=self.durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_ack_pending=self.max_ack_pending,
            deliver_policy=api.DeliverPolicy.NEW,
            deliver_subject=self.deliver,
        )


async def bind_shared(
    bus: Bus, spec: SharedConsumer, handler: Callable[[Delivery], Awaitable[None]]
) -> Any:
    """Bind (creating or updating) ``spec`` and hand every delivery to ``handler``; the
    subscription is returned for :meth:`unsubscribe`. Raises :class:`HactlError` when the
    consumer cannot be bound within a minute of JetStream being busy."""

    async def on_msg(msg: Msg) -> None:
        await handler(Delivery(msg))

    async def bind() -> Any:
        return await bus.js.subscribe(
            "",
            queue=spec.durable,
            durable=spec.durable,
            stream=spec.stream,
            config=spec.config(),
            manual_ack=True,
            cb=on_msg,
            pending_msgs_limit=200_000,
        )

    await _update(bus, spec)  # an existing one keeps its own settings otherwise
    try:
        return await patient(bind, f"reactor: binding consumer {spec.durable}", url=bus.url)
    except nats.js.errors.Error as exc:
        raise HactlError(f"reactor: cannot bind consumer {spec.durable}: {exc}") from None


async def _update(bus: Bus, spec: SharedConsumer) -> None:
    """Make an existing shared consumer unfiltered (older hactl asked for filter subjects),
    deliver to the fixed subject every master may bind, and use our ack settings."""
    try:
        info = await patient(
            lambda: bus.js.consumer_info(spec.stream, spec.durable),
            f"reactor: reading consumer {spec.durable}",
            url=bus.url,
        )
    except nats.js.errors.NotFoundError:
        return  # created by the bind
    try:
        config = info.config
        if (
            not config.filter_subjects
            and not config.filter_subject
            and config.deliver_subject == spec.deliver
            and config.ack_wait == spec.ack_wait
            and config.max_ack_pending == spec.max_ack_pending
        ):
            return
        config.filter_subjects, config.filter_subject = None, None
        config.deliver_subject = spec.deliver
        config.ack_wait, config.max_ack_pending = spec.ack_wait, spec.max_ack_pending
        await bus.js.add_consumer(spec.stream, config)
        log.info("consumer_updated", consumer=spec.durable, ack_wait=spec.ack_wait)
    except nats.js.errors.Error as exc:
        log.error("consumer_not_updated", consumer=spec.durable, error=str(exc))


async def unsubscribe(sub: Any) -> None:
    """Stop a subscription; never raises (the connection may be gone already)."""
    if sub is not None:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def pending(bus: Bus, stream: str, durable: str, timeout: float) -> int:
    """How many stored messages the consumer has not delivered yet; :class:`BusError` when
    JetStream does not answer within ``timeout``."""
    try:
        info = await bus.js.consumer_info(stream, durable, timeout=timeout)
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
        raise BusError(bus.url, f"no consumer info ({type(exc).__name__})") from None
    return int(info.num_pending or 0)
