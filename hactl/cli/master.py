"""``hactl master``: its options; the process lifecycle is hactl/master/daemon.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hactl.bus import StreamSettings
from hactl.cli.runner import EXIT_INTERRUPTED, fail, settings_of
from hactl.errors import HactlError
from hactl.master.config import load_master_config
from hactl.master.daemon import MasterOptions, run_master
from hactl.master.reactor.convergence.reconciler import ReconcileOptions
from hactl.master.reactor.rules.actions import Settings
from hactl.master.reactor.runtime import ReactorOptions
from hactl.metrics import parse_address
from hactl.timeparse import parse_duration

_KEYS = (
    "port",
    "host",
    "retention",
    "max_bytes",
    "replicas",
    "reactors",
    "observe",
    "states",
    "pillar",
    "lost_after",
    "ack_wait",
    "allow_unreachable",
    "reconcile_interval",
    "metrics",
    "nats_monitor",
)


def locals_of_master(ctx: typer.Context, from_file: dict[str, Any]) -> dict[str, Any]:
    """Each setting: the flag or its environment variable when given, else the file's value,
    else the flag's default."""
    out: dict[str, Any] = {}
    for key in _KEYS:
        source = ctx.get_parameter_source(key)
        value = ctx.params.get(key)
        # typer's click is vendored: ParameterSource is compared by name
        at_default = source is None or getattr(source, "name", "") == "DEFAULT"
        if at_default and key in from_file:
            value = from_file[key]
        if isinstance(value, Path):
            value = str(value)
        if key == "pillar" and value is not None:
            value = [str(p) for p in value]
        out[key] = value
    return out


def master(
    ctx: typer.Context,
    port: Annotated[
        int,
        typer.Option(
            envvar="HACTL_MASTER_PORT", help="Client port of the embedded server (-1: any free)"
        ),
    ] = 4222,
    host: Annotated[
        str, typer.Option(envvar="HACTL_MASTER_HOST", help="Listen address of the embedded server")
    ] = "127.0.0.1",
    retention: Annotated[
        str,
        typer.Option(
            envvar="HACTL_MASTER_RETENTION", help="Keep events this long (JetStream max age)"
        ),
    ] = "7d",
    max_bytes: Annotated[
        int,
        typer.Option(
            envvar="HACTL_MASTER_MAX_BYTES", help="Keep at most this many bytes of events"
        ),
    ] = 1024**3,
    replicas: Annotated[
        int,
        typer.Option(envvar="HACTL_MASTER_REPLICAS", help="JetStream replicas of the event stream"),
    ] = 1,
    reactors: Annotated[
        Path | None,
        typer.Option(
            envvar="HACTL_MASTER_REACTORS",
            help="Folder of reactor rules (reactors/); none: no reactor",
        ),
    ] = None,
    observe: Annotated[
        bool,
        typer.Option(
            envvar="HACTL_MASTER_OBSERVE",
            help="Evaluate rules and report every action without doing it",
        ),
    ] = False,
    states: Annotated[
        Path | None,
        typer.Option(envvar="HACTL_MASTER_STATES", help="State tree for the state.apply action"),
    ] = None,
    pillar: Annotated[
        list[Path] | None,
        typer.Option(envvar="HACTL_MASTER_PILLAR", help="Extra pillar for state.apply"),
    ] = None,
    lost_after: Annotated[
        str,
        typer.Option(envvar="HACTL_MASTER_LOST_AFTER", help="A minion silent this long is lost"),
    ] = "30s",
    ack_wait: Annotated[
        str,
        typer.Option(
            envvar="HACTL_MASTER_ACK_WAIT",
            help="Redeliver an event a master did not finish within this",
        ),
    ] = "10s",
    allow_unreachable: Annotated[
        bool,
        typer.Option(
            envvar="HACTL_MASTER_ALLOW_UNREACHABLE",
            help="Let galera.recover_cluster proceed without every member",
        ),
    ] = False,
    reconcile_interval: Annotated[
        str,
        typer.Option(
            envvar="HACTL_MASTER_RECONCILE_INTERVAL",
            help="Converge every HAProxy to the desired state this often (0: never)",
        ),
    ] = "5s",
    metrics: Annotated[
        str,
        typer.Option(
            envvar="HACTL_MASTER_METRICS",
            help="Serve Prometheus metrics on host:port (e.g. 127.0.0.1:9464; '' = off)",
        ),
    ] = "",
    nats_monitor: Annotated[
        str,
        typer.Option(
            envvar="HACTL_MASTER_NATS_MONITOR",
            help="The embedded nats-server's HTTP monitoring on host:port ('' = off)",
        ),
    ] = "",
    config: Annotated[
        Path | None,
        typer.Option(
            envvar="HACTL_MASTER_CONFIG",
            help="master.yaml (default /etc/hactl/master.yaml when it exists)",
        ),
    ] = None,
) -> None:
    """Run the master. Without --nats / $HACTL_NATS it starts an embedded nats-server.
    Settings: flag > HACTL_MASTER_<KEY> > master.yaml > default."""
    settings = settings_of(ctx)
    try:
        from_file, _ = load_master_config(config)
        given = dict(locals_of_master(ctx, from_file))
        port, host, retention = given["port"], given["host"], given["retention"]
        max_bytes, replicas, observe = given["max_bytes"], given["replicas"], given["observe"]
        lost_after, ack_wait = given["lost_after"], given["ack_wait"]
        allow_unreachable = given["allow_unreachable"]
        reconcile_interval = given["reconcile_interval"]
        reactors = Path(given["reactors"]) if given["reactors"] is not None else None
        states = Path(given["states"]) if given["states"] is not None else None
        pillar = [Path(p) for p in given["pillar"] or ()]
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
        for address in (given["metrics"], given["nats_monitor"]):
            if address:
                parse_address(address)
        options = MasterOptions(
            stream=stream,
            reactor=reactor,
            host=host,
            port=port,
            metrics=given["metrics"] or "",
            notify=from_file.get("notify", ()),
            nats_monitor=given["nats_monitor"] or "",
        )
        run_master(settings, options)
    except HactlError as exc:
        fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
