"""``hactl master``: its options; the process lifecycle is hactl/master/daemon.py."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hactl.bus import StreamSettings
from hactl.cli.runner import EXIT_INTERRUPTED, fail, settings_of
from hactl.errors import HactlError
from hactl.master.config import FIELD, FLAG_KEYS, env_var, load_master_config
from hactl.master.daemon import MasterOptions, run_master
from hactl.master.reactor.convergence.reconciler import ReconcileOptions
from hactl.master.reactor.rules.actions import Settings
from hactl.master.reactor.runtime import ReactorOptions
from hactl.metrics import parse_address
from hactl.timeparse import parse_duration


def _flag(key: str) -> Any:
    """The typer option of a setting: help and environment variable from its one declaration
    (master/config.py FIELDS)."""
    return typer.Option(envvar=env_var(key), help=FIELD[key].doc)


#: each flag's default, from the same declaration
DEFAULTS: dict[str, Any] = {key: FIELD[key].default for key in FLAG_KEYS}


def locals_of_master(ctx: typer.Context, from_file: dict[str, Any]) -> dict[str, Any]:
    """Each setting: the flag or its environment variable when given, else the file's value,
    else the flag's default."""
    out: dict[str, Any] = {}
    for key in FLAG_KEYS:
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
    port: Annotated[int, _flag("port")] = DEFAULTS["port"],
    host: Annotated[str, _flag("host")] = DEFAULTS["host"],
    retention: Annotated[str, _flag("retention")] = DEFAULTS["retention"],
    max_bytes: Annotated[int, _flag("max_bytes")] = DEFAULTS["max_bytes"],
    replicas: Annotated[int, _flag("replicas")] = DEFAULTS["replicas"],
    reactors: Annotated[Path | None, _flag("reactors")] = DEFAULTS["reactors"],
    observe: Annotated[bool, _flag("observe")] = DEFAULTS["observe"],
    states: Annotated[Path | None, _flag("states")] = DEFAULTS["states"],
    pillar: Annotated[list[Path] | None, _flag("pillar")] = DEFAULTS["pillar"],
    lost_after: Annotated[str, _flag("lost_after")] = DEFAULTS["lost_after"],
    ack_wait: Annotated[str, _flag("ack_wait")] = DEFAULTS["ack_wait"],
    allow_unreachable: Annotated[bool, _flag("allow_unreachable")] = DEFAULTS["allow_unreachable"],
    reconcile_interval: Annotated[str, _flag("reconcile_interval")] = DEFAULTS[
        "reconcile_interval"
    ],
    metrics: Annotated[str, _flag("metrics")] = DEFAULTS["metrics"],
    nats_monitor: Annotated[str, _flag("nats_monitor")] = DEFAULTS["nats_monitor"],
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
