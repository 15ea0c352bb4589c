"""Notifications: decisions and alerts pushed to webhooks, signed, retried, never in the way.

master.yaml ``notify`` lists sinks::

    notify:
      - url: https://hooks.example.org/hactl
        match: ["hactl/event/alert/**", "hactl/reactor/*/failed"]   # tag globs
        secret_file: /etc/hactl/webhook.secret                       # HMAC-SHA256 key
      - url: http://alertmanager:9093/api/v2/alerts
        kind: alertmanager                                           # master/alertmanager.py
        match: ["hactl/event/alert/**", "hactl/reactor/**"]
        resend: 60s        # open alerts posted again this often (firing for as long as open)

Each matching event (heard live on the bus) is POSTed as JSON (the event: tag, id, minion,
ts, data) with ``X-Hactl-Signature: sha256=<hex HMAC of the body>`` when a secret is set and
``X-Hactl-Event: <id>`` (a receiver drops duplicates by it). A sink has its own bounded queue
(1,000; the oldest is dropped and counted when it is full) and one worker: a slow or dead
receiver never slows the reactor or another sink. A failed POST (connection error, timeout,
non-2xx) is retried with backoff (0.5 s doubling, 5 tries), then dropped and counted. Every
attempt is logged; the counters are in ``hactl stats`` and the metrics (``notify``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hactl.bus import Bus
from hactl.log import get_logger
from hactl.master.alertmanager import OpenAlerts, alert_of
from hactl.wire.envelope import Event
from hactl.wire.tags import TagGlob

log = get_logger("hactl.notify")
QUEUE = 1000
TRIES = 5
TIMEOUT = 5.0
KINDS = ("webhook", "alertmanager")


@dataclass(frozen=True, slots=True)
class Sink:
    """One webhook: where, which tags, the HMAC key (b'' = unsigned)."""

    url: str
    match: tuple[str, ...]
    secret: bytes = b""
    #: ``webhook`` (the event as JSON) or ``alertmanager`` (its API: master/alertmanager.py)
    kind: str = "webhook"
    #: alertmanager: how often open alerts are posted again; each is sent with ``endsAt``
    #: 4 x this ahead, so it stays firing while hactl lives and ends by itself after
    resend_s: float = 60.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r}: one of {', '.join(KINDS)}")
        if not 1.0 <= self.resend_s <= 3600.0:
            raise ValueError(f"resend {self.resend_s:g}s: between 1s and 1h")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{self.url!r}: an http(s) URL")
        for g in self.match:
            TagGlob.parse(g)  # a TagError names a bad glob


def sign(secret: bytes, body: bytes) -> str:
    """``sha256=<hex>``: what a receiver recomputes with the shared secret."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def request_bytes(sink: Sink, body: bytes, event_id: str) -> bytes:
    """The HTTP/1.1 POST for ``body`` (pure)."""
    parts = urlsplit(sink.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if event_id:  # a re-send of open alerts answers no one event
        headers.append(f"X-Hactl-Event: {event_id}")
    if sink.secret:
        headers.append(f"X-Hactl-Signature: {sign(sink.secret, body)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


@dataclass
class _Worker:
    sink: Sink
    #: events to deliver; None is the periodic re-send of open alerts (queued, so it never
    #: overtakes a resolution and fires again what was just resolved)
    queue: deque[Event | None] = field(default_factory=lambda: deque(maxlen=QUEUE))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    counts: dict[str, int] = field(
        default_factory=lambda: {"queued": 0, "sent": 0, "failed": 0, "dropped": 0, "retries": 0}
    )
    alerts: OpenAlerts = field(default_factory=OpenAlerts)  # alertmanager: firing, not ended


class Notifier:
    """Subscribes to the sinks' globs and feeds each sink's worker."""

    def __init__(self, bus: Bus, sinks: list[Sink]) -> None:
        self.bus = bus
        self.workers = [_Worker(s, alerts=OpenAlerts(hold_s=4 * s.resend_s)) for s in sinks]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Subscribe and start one worker per sink."""
        for w in self.workers:
            for g in w.sink.match:
                await self.bus.subscribe(TagGlob.parse(g), self._offer(w))
            self._tasks.append(asyncio.create_task(self._run(w), name=f"notify-{w.sink.url}"))
            if w.sink.kind == "alertmanager":
                self._tasks.append(asyncio.create_task(self._resend(w), name="notify-resend"))

    async def _resend(self, w: _Worker) -> None:
        while True:
            await asyncio.sleep(w.sink.resend_s)
            if w.alerts.firing:
                w.queue.append(None)
                w.wake.set()

    def _offer(self, w: _Worker) -> Any:
        async def take(event: Event) -> None:
            if len(w.queue) == QUEUE:
                w.counts["dropped"] += 1  # the deque drops the oldest
            w.queue.append(event)
            w.counts["queued"] = len(w.queue)
            w.wake.set()

        return take

    async def _run(self, w: _Worker) -> None:
        while True:
            await w.wake.wait()
            w.wake.clear()
            while w.queue:
                event = w.queue.popleft()
                w.counts["queued"] = len(w.queue)
                await self._deliver(w, event)

    async def _deliver(self, w: _Worker, event: Event | None) -> None:
        if event is None:  # the periodic re-send: every open alert, still firing
            alerts = w.alerts.due(time.time())
            if alerts:
                body = json.dumps(alerts, separators=(",", ":"), sort_keys=True).encode()
                await self._post(w, body, "", "resend")
            return
        if w.sink.kind == "alertmanager":
            alert = alert_of(event)
            if alert is None:
                return
            alerts = w.alerts.take(alert, time.time())
            if not alerts:
                return  # a resolution of nothing this sink reported
            body = json.dumps(alerts, separators=(",", ":"), sort_keys=True).encode()
        else:
            body = json.dumps(event.as_json(), separators=(",", ":"), sort_keys=True).encode()
        await self._post(w, body, event.id, event.tag)

    async def _post(self, w: _Worker, body: bytes, event_id: str, tag: str) -> None:
        delay = 0.5
        for attempt in range(1, TRIES + 1):
            why = await post(w.sink, body, event_id)
            if not why:
                w.counts["sent"] += 1
                log.info("notify_sent", url=w.sink.url, tag=tag, attempt=attempt)
                return
            log.warning("notify_attempt_failed", url=w.sink.url, tag=tag, why=why, attempt=attempt)
            if attempt < TRIES:
                w.counts["retries"] += 1
                await asyncio.sleep(delay)
                delay *= 2
        w.counts["failed"] += 1

    def stats(self) -> dict[str, dict[str, int]]:
        """Per sink: queued, sent, failed, dropped, retries."""
        return {w.sink.url: dict(w.counts) for w in self.workers}

    async def stop(self) -> None:
        """Stop the workers (what is still queued is dropped; it was counted as queued)."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:  # a worker that died of a bug must not stop the stop
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


async def post(sink: Sink, body: bytes, event_id: str, timeout: float = TIMEOUT) -> str:
    """POST once; '' on a 2xx answer, else why not (bounded by ``timeout``)."""
    parts = urlsplit(sink.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    tls = ssl.create_default_context() if parts.scheme == "https" else None
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, port, ssl=tls), timeout
        )
        writer.write(request_bytes(sink, body, event_id))
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    words = status.decode("latin-1").split()
    if len(words) >= 2 and words[1].startswith("2"):
        return ""
    return f"HTTP {' '.join(words[1:3]) or 'no answer'}"
