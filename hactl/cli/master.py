"""``hactl master``: its options; the process lifecycle is hactl/master/daemon.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hactl.bus import StreamSettings
from hactl.cli.runner import EXIT_INTERRUPTED, fail, settings_of
from hactl.errors import HactlError
from hactl.master.daemon import MasterOptions, run_master
from hactl.master.reactor.actions import Settings
from hactl.master.reactor.reconciler import ReconcileOptions
from hactl.master.reactor.runtime import ReactorOptions
from hactl.timeparse import parse_duration


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
    reconcile_interval: Annotated[
        str,
        typer.Option(help="Converge every HAProxy to the desired state this often (0: never)"),
    ] = "5s",
) -> None:
    """Run the master. Without --nats / $HACTL_NATS it starts an embedded nats-server."""
    settings = settings_of(ctx)
    try:
        reactor = None
        if reactors is not None:
            reactor = ReactorOptions(
                rules_dir=reactors,
                observe=observe,
                ack_wait=parse_duration(ack_wait),
                lost_after=parse_duration(lost_after),
                reconcile=ReconcileOptions(interval=parse_duration(reconcile_interval)),
                replicas=replicas,
                settings=Settings(
                    states=states, pillar=tuple(pillar or ()), allow_unreachable=allow_unreachable
                ),
            )
        stream = StreamSettings(
            max_age_s=parse_duration(retention), max_bytes=max_bytes, replicas=replicas
        )
        run_master(settings, MasterOptions(stream=stream, reactor=reactor, host=host, port=port))
    except HactlError as exc:
        fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
