"""The master's process lifecycle: the embedded nats-server (when no URL is given), the URL
record the CLI on this host reads, the hub and the reactor, and a clean stop on SIGTERM.

``hactl master`` (hactl/cli/master.py) only turns its options into :class:`MasterOptions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import faulthandler
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hactl.auth import store
from hactl.auth.client import ClientAuth, for_identity
from hactl.bus import Bus, StreamSettings
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.config import (
    ENV_NATS,
    LOCAL_ADMIN,
    URL_FILE,
    Settings,
    UrlRecord,
    format_url_record,
    recorded_url,
    resolve_auth,
)
from hactl.errors import EmbeddedServerError, JetStreamBusy
from hactl.log import get_logger
from hactl.master.hub import METRICS, Hub
from hactl.master.incarnation import claim
from hactl.master.notify import Notifier, Sink
from hactl.master.reactor.rules.actions import REGISTRY
from hactl.master.reactor.rules.rule import load_rules
from hactl.master.reactor.runtime import ReactorOptions, ReactorRuntime
from hactl.metrics import serve as serve_metrics
from hactl.wire.tags import MASTER_ID

log = get_logger("hactl.master")

#: a stop (SIGTERM) that has not ended the process this long after the signal is stuck: the
#: stacks of every thread go to stderr and the process exits 1. A clean stop may take up to
#: ~20 s: running actions get 10 s (hub), the view and leases a few, the bus 7 s (Bus.close).
#: (A lab master still ran 20 s after SIGTERM once, its log silent; the lab waited 20 s.)
#: systemd's TimeoutStopSec=45s stays above it, so its SIGKILL never hides the stacks.
STOP_DEADLINE_S = 30.0
#: before that, what the event loop still runs is logged (``master_stop_slow``)
STOP_SLOW_S = 20.0


@dataclass(frozen=True, slots=True)
class MasterOptions:
    """What ``hactl master`` was asked to run."""

    stream: StreamSettings
    reactor: ReactorOptions | None = None
    host: str = "127.0.0.1"  # of the embedded server
    port: int = 4222  # of the embedded server (-1: any free)
    metrics: str = ""  # host:port of the Prometheus endpoint ('' = none)
    notify: tuple[Sink, ...] = ()  # webhooks (master.yaml notify)
    nats_monitor: str = ""  # host:port of the embedded server's HTTP monitoring ('' = none)


def run_master(settings: Settings, options: MasterOptions) -> None:
    """Run until SIGTERM. Raises :class:`hactl.errors.HactlError` on an expected failure (a
    bad rule file, a second embedded master on one data dir, NATS unreachable)."""
    if options.reactor is not None and options.reactor.rules_dir is not None:
        load_rules(options.reactor.rules_dir, REGISTRY)  # refuse to start on a bad rule file
    held = claim(settings.data_dir)  # this run on its data dir (decision 59), for its life
    if options.reactor is not None:
        reactor = dataclasses.replace(options.reactor, incarnation=held.incarnation)
        options = dataclasses.replace(options, reactor=reactor)
    try:
        _run(settings, options)
    finally:
        held.release()


def _run(settings: Settings, options: MasterOptions) -> None:
    url = settings.nats_url or os.environ.get(ENV_NATS)
    if url:
        asyncio.run(serve(url, resolve_auth(settings), settings.connect_timeout, options))
        return
    server, url, auth = _start_embedded(settings, options)
    record = settings.data_dir / URL_FILE
    try:
        asyncio.run(serve(url, auth, settings.connect_timeout, options))
    finally:
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        server.stop()
        log.info("embedded_nats_stopped")


def _start_embedded(
    settings: Settings, options: MasterOptions
) -> tuple[EmbeddedServer, str, ClientAuth]:
    """Start the embedded server and write the URL record (atomically)."""
    existing = recorded_url(settings.data_dir)
    if existing is not None:
        raise EmbeddedServerError(
            f"a master (pid {existing.pid}) already runs an embedded server at "
            f"{existing.url} for {settings.data_dir}; stop it or use another --data-dir"
        )
    auth_dir = embedded_auth(settings.data_dir, options.host)
    server = EmbeddedServer(
        ServerOptions(
            data_dir=settings.data_dir / "nats",
            auth=ServerAuth(auth_dir),
            host=options.host,
            port=options.port,
            monitor=options.nats_monitor,
        )
    )
    url = server.start()  # stops its own child if it fails
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    record = settings.data_dir / URL_FILE
    tmp = record.with_suffix(".tmp")
    tmp.write_text(
        format_url_record(UrlRecord(url, os.getpid(), server.pid, str(auth_dir))),
        encoding="utf-8",
    )
    tmp.replace(record)
    log.info(
        "embedded_nats_started",
        url=url,
        server_pid=server.pid,
        data_dir=str(settings.data_dir),
        auth_dir=str(auth_dir),
    )
    auth = for_identity(auth_dir, MASTER_ID)
    return server, url, dataclasses.replace(auth, tls_handshake_first=server.handshake_first)


def embedded_auth(data_dir: Path, host: str) -> Path:
    """The embedded server's auth directory, created on first start: a CA, a certificate for
    ``host`` and loopback, the ``master`` and a local ``admin`` identity (what the CLI on this
    host uses). Later starts reuse it; ``hactl auth --dir`` manages it."""
    root = data_dir / "auth"
    if not (root / "identities.json").exists():
        hosts = list(dict.fromkeys([host, "127.0.0.1", "localhost", socket.gethostname()]))
        hosts = [h for h in hosts if h not in ("0.0.0.0", "::")]  # noqa: S104 - not a bind
        store.init(
            root, nodes=[], masters=[MASTER_ID], admins=[LOCAL_ADMIN], operators=[], hosts=hosts
        )
    return root


#: how long a starting master waits for JetStream to answer -- a cluster electing leaders
#: right after a partition healed, a bucket whose leader is cut off -- before it gives up
START_PATIENCE_S = 300.0


async def _started(
    url: str, auth: ClientAuth, timeout: float, options: MasterOptions
) -> tuple[Bus, Hub]:
    """A connected bus and a started hub. While JetStream does not answer (JetStreamBusy),
    the partial start is undone and tried again on a new connection, backing off to 5 s,
    for up to :data:`START_PATIENCE_S` (a master once exited at once when restarted while
    one of three NATS servers was cut off, and stayed down)."""
    deadline, delay = time.monotonic() + START_PATIENCE_S, 0.5
    while True:
        bus = await Bus.connect(
            url, auth, name="hactl-master", timeout=timeout, reconnect=True, announce=True
        )
        reactor = options.reactor
        runtime = ReactorRuntime(bus, reactor) if reactor is not None else None
        hub = Hub(bus, options.stream, runtime)
        try:
            await hub.start()
            return bus, hub
        except JetStreamBusy as exc:
            await hub.abort()
            await bus.close()
            if time.monotonic() + delay > deadline:
                raise
            log.warning("master_start_waiting", error=str(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        except BaseException:
            await bus.close()
            raise


async def serve(url: str, auth: ClientAuth, timeout: float, options: MasterOptions) -> None:
    """Connect as the master, run the hub (and the reactor) until SIGTERM."""
    loop = asyncio.get_running_loop()
    # SIGTERM is ours before READY=1 (sent inside the start): systemd may stop the unit the
    # moment it is ready, and the default action would end the master unclean (-15)
    early: list[bool] = []
    loop.add_signal_handler(signal.SIGTERM, early.append, True)
    try:
        bus, hub = await _started(url, auth, timeout, options)
    except BaseException:
        loop.remove_signal_handler(signal.SIGTERM)
        raise

    asked: list[float] = []

    def on_sigterm() -> None:
        if not asked:
            asked.append(time.monotonic())
            log.info("master_stop_asked", reason="SIGTERM")
            _arm_stop_deadline(loop)
        hub.stop()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    if early:
        on_sigterm()
    try:
        if options.notify:
            hub.notifier = Notifier(bus, list(options.notify))
            await hub.notifier.start()
        if options.metrics:
            serve_metrics(options.metrics, "hactl_master", hub.metrics_snapshot, METRICS)
        await hub.run_forever()
        log.info("master_stopping", reason="SIGTERM")
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await bus.close()
    if asked:  # how long the clean stop took (bounded: STOP_DEADLINE_S)
        log.info("master_stopped", took_s=round(time.monotonic() - asked[0], 2))


def _arm_stop_deadline(loop: asyncio.AbstractEventLoop) -> None:
    """Bound a stop: the loop's pending tasks are logged at :data:`STOP_SLOW_S` (if the loop
    still runs), and at :data:`STOP_DEADLINE_S` faulthandler writes every thread's stack to
    stderr and exits 1 (from its own thread: it works while the loop is blocked, too)."""
    faulthandler.dump_traceback_later(STOP_DEADLINE_S, exit=True, file=sys.stderr)
    loop.call_later(STOP_SLOW_S, _log_tasks)


def _log_tasks() -> None:
    """What is left of a stop that takes long: every task with where it waits."""
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is current:
            continue
        frames = task.get_stack(limit=8)
        where = [f"{f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" for f in frames]
        log.warning("master_stop_slow", task=task.get_name(), waits_in=where)
