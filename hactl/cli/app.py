"""The root ``hactl`` command: global options and the command table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hactl.cli import (
    apply,
    approve,
    auth,
    cleanup,
    config_cmd,
    events,
    fire,
    history,
    init,
    keystone,
    lab,
    maint,
    master,
    minion,
    ping,
    reactors,
    render,
    singleton,
    stats,
    status,
    units,
    version,
    why,
)
from hactl.config import DEFAULT_CONNECT_TIMEOUT, LogFormat, Settings, default_data_dir
from hactl.log import configure

app = typer.Typer(
    name="hactl",
    help="Keep an OpenStack control plane highly available: keepalived, HAProxy, Galera, "
    "RabbitMQ, driven by events over NATS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
)


@app.callback()
def root(
    ctx: typer.Context,
    nats: Annotated[
        str | None,
        typer.Option(
            "--nats", envvar="HACTL_NATS", help="NATS URL (default: the master's embedded server)"
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", envvar="HACTL_DATA_DIR", help="State dir (default $XDG_STATE_HOME/hactl)"
        ),
    ] = None,
    log_format: Annotated[
        str, typer.Option("--log-format", help="json | console | auto (console on a TTY)")
    ] = "auto",
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only")] = False,
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for NATS before giving up")
    ] = DEFAULT_CONNECT_TIMEOUT,
    creds: Annotated[
        Path | None,
        typer.Option(
            "--creds",
            envvar="HACTL_CREDS",
            help="Identity: nkey seed file from `hactl auth` (or a .creds file)",
        ),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option("--tls-ca", envvar="HACTL_TLS_CA", help="CA that signed the NATS servers"),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Client certificate (servers that ask)")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Its private key")] = None,
    tls_handshake_first: Annotated[
        bool,
        typer.Option(
            "--tls-handshake-first/--no-tls-handshake-first",
            envvar="HACTL_TLS_HANDSHAKE_FIRST",
            help="TLS before the server's greeting (nats-server >= 2.10.4); off for older "
            "servers (Debian 12's 2.9.10): TLS is still required",
        ),
    ] = True,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=version.print_and_exit, help="Print the version"
        ),
    ] = False,
) -> None:
    """Global options."""
    if log_format not in ("json", "console", "auto"):
        raise typer.BadParameter("json, console or auto", param_hint="--log-format")
    fmt: LogFormat = log_format  # type: ignore[assignment]
    verbosity = -1 if quiet else verbose
    configure(fmt, verbosity)
    ctx.obj = Settings(
        nats_url=nats,
        data_dir=data_dir or default_data_dir(),
        log_format=fmt,
        verbosity=verbosity,
        connect_timeout=connect_timeout,
        creds=creds,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_handshake_first=tls_handshake_first,
    )


app.command()(master.master)
app.command()(minion.minion)
app.command()(fire.fire)
app.command()(version.version)
app.command()(ping.ping)
app.command()(stats.stats)
app.command()(apply.apply)
app.command()(render.render)
app.add_typer(events.app, name="events")
app.add_typer(reactors.app, name="reactors")
app.add_typer(lab.app, name="lab")
app.add_typer(auth.app, name="auth")
app.add_typer(maint.app, name="maint")
app.add_typer(keystone.app, name="keystone")
app.add_typer(singleton.app, name="singleton")
app.add_typer(config_cmd.app, name="config")
app.command()(status.status)
app.command(name="install-units")(units.install_units)
app.command()(init.init)
app.command()(history.history)
app.command()(why.why)
app.command()(cleanup.cleanup)
app.command(name="approvals")(approve.list_)
app.command()(approve.approve)
app.command()(approve.deny)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C outside an event loop (e.g. while parsing)
        raise SystemExit(130) from None
