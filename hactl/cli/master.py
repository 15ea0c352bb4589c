"""``hactl master``: the bus hub (embedded NATS when no URL is given) and the reactor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path
from typing import Annotated

import typer

from hactl.auth import store
from hactl.auth.client import ClientAuth, for_identity
from hactl.bus import Bus, StreamSettings
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.cli.runner import fail, run, settings_of
from hactl.config import (
    ENV_NATS,
    LOCAL_ADMIN,
    URL_FILE,
    UrlRecord,
    format_url_record,
    recorded_url,
    resolve_auth,
)
from hactl.errors import EmbeddedServerError, HactlError
from hactl.log import get_logger
from hactl.master.hub import Hub
from hactl.master.reactor.actions import REGISTRY, Settings
from hactl.master.reactor.rules import load_rules
from hactl.master.reactor.runtime import ReactorOptions, ReactorRuntime
from hactl.timeparse import parse_duration
from hactl.wire.tags import MASTER_ID

log = get_logger("hactl.master")


def master(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option(help="Client port of the embedded server (-1: any free)")
    ] = 4222,
    host: Annotated[str, typer.Option(help="Listen address of the embedded server")] = "127.0.0.1",
    retention: Annotated[
        str, typer.Option(help="Keep events this long (JetStream max age)")
    ] = "7d",
    max_bytes: Annotated[int, typer.Option(help="Keep at most this many bytes of events")] = 1024
    ** 3,
    replicas: Annotated[int, typer.Option(help="JetStream replicas of the event stream")] = 1,
    reactors: Annotated[
        Path | None, typer.Option(help="Folder of reactor rules (reactors/); none: no reactor")
    ] = None,
    observe: Annotated[
        bool, typer.Option(help="Evaluate rules and report every action without doing it")
    ] = False,
    states: Annotated[
        Path | None, typer.Option(help="State tree for the state.apply action")
    ] = None,
    pillar: Annotated[list[Path] | None, typer.Option(help="Extra pillar for state.apply")] = None,
    lost_after: Annotated[str, typer.Option(help="A minion silent this long is lost")] = "30s",
    ack_wait: Annotated[
        str, typer.Option(help="Redeliver an event a master did not finish within this")
    ] = "10s",
    allow_unreachable: Annotated[
        bool, typer.Option(help="Let galera.recover_cluster proceed without every member")
    ] = False,
) -> None:
    """Run the master. Without --nats / $HACTL_NATS it starts an embedded nats-server."""
    settings = settings_of(ctx)
    try:
        reactor = (
            ReactorOptions(
                rules_dir=reactors,
                observe=observe,
                ack_wait=parse_duration(ack_wait),
                lost_after=parse_duration(lost_after),
                replicas=replicas,
                settings=Settings(
                    states=states, pillar=tuple(pillar or ()), allow_unreachable=allow_unreachable
                ),
            )
            if reactors is not None
            else None
        )
        if reactors is not None:
            load_rules(reactors, REGISTRY)  # refuse to start on a bad rule file
    except HactlError as exc:
        fail(exc)
    stream = StreamSettings(
        max_age_s=parse_duration(retention), max_bytes=max_bytes, replicas=replicas
    )
    url = settings.nats_url or os.environ.get(ENV_NATS)
    server: EmbeddedServer | None = None
    record_path = settings.data_dir / URL_FILE
    try:
        auth = None if not url else resolve_auth(settings)
        if not url:
            existing = recorded_url(settings.data_dir)
            if existing is not None:
                raise EmbeddedServerError(
                    f"a master (pid {existing.pid}) already runs an embedded server at "
                    f"{existing.url} for {settings.data_dir}; stop it or use another --data-dir"
                )
            auth_dir = embedded_auth(settings.data_dir, host)
            auth = for_identity(auth_dir, MASTER_ID)
            candidate = EmbeddedServer(
                ServerOptions(
                    data_dir=settings.data_dir / "nats",
                    auth=ServerAuth(auth_dir),
                    host=host,
                    port=port,
                )
            )
            url = candidate.start()  # stops its own child if it fails
            server = candidate
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = record_path.with_suffix(".tmp")
            tmp.write_text(
                format_url_record(UrlRecord(url, os.getpid(), server.pid, str(auth_dir))),
                encoding="utf-8",
            )
            tmp.replace(record_path)
            log.info(
                "embedded_nats_started",
                url=url,
                server_pid=server.pid,
                data_dir=str(settings.data_dir),
                auth_dir=str(auth_dir),
            )
        assert auth is not None
        run(_serve(url, auth, stream, settings.connect_timeout, reactor))
    except HactlError as exc:
        fail(exc)
    finally:
        if server is not None:
            with contextlib.suppress(FileNotFoundError):
                record_path.unlink()
            server.stop()
            log.info("embedded_nats_stopped")


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


async def _serve(
    url: str,
    auth: ClientAuth,
    stream: StreamSettings,
    timeout: float,
    reactor: ReactorOptions | None,
) -> None:
    bus = await Bus.connect(
        url, auth, name="hactl-master", timeout=timeout, reconnect=True, announce=True
    )
    hub = Hub(bus, stream, ReactorRuntime(bus, reactor) if reactor is not None else None)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, hub.stop)
    try:
        await hub.start()
        await hub.run_forever()
        log.info("master_stopping", reason="SIGTERM")
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await bus.close()
