"""The root ``hactl`` command: global options and the command table.

Commands are registered from :data:`COMMANDS` (name -> module, attribute, sub-app or not).
A run imports only the module of the command it runs (``hactl ping`` never imports the
master, the lab or the state compiler): about a second less per invocation on these
machines, which scripts that call hactl many times feel. Help, completion and an unknown
name get the whole table.
"""

from __future__ import annotations

import importlib
import os
import sys
from functools import cache
from pathlib import Path
from typing import Annotated, NamedTuple

import typer

from hactl.cli import version
from hactl.config import DEFAULT_CONNECT_TIMEOUT, LogFormat, Settings, default_data_dir
from hactl.log import configure


class Command(NamedTuple):
    """Where a command lives: ``hactl.cli.<module>.<attr>``, a sub-app (``add_typer``) or a
    function (``command``)."""

    module: str
    attr: str
    group: bool = False


#: every command, in the order ``hactl --help`` lists them
COMMANDS: dict[str, Command] = {
    "master": Command("master", "master"),
    "minion": Command("minion", "minion"),
    "fire": Command("fire", "fire"),
    "version": Command("version", "version"),
    "ping": Command("ping", "ping"),
    "stats": Command("stats", "stats"),
    "apply": Command("apply", "apply"),
    "render": Command("render", "render"),
    "events": Command("events", "app", group=True),
    "reactors": Command("reactors", "app", group=True),
    "lab": Command("lab", "app", group=True),
    "auth": Command("auth", "app", group=True),
    "maint": Command("maint", "app", group=True),
    "keystone": Command("keystone", "app", group=True),
    "singleton": Command("singleton", "app", group=True),
    "config": Command("config_cmd", "app", group=True),
    "status": Command("status", "status"),
    "install-units": Command("units", "install_units"),
    "init": Command("init", "init"),
    "history": Command("history", "history"),
    "why": Command("why", "why"),
    "cleanup": Command("cleanup", "cleanup"),
    "approvals": Command("approve", "list_"),
    "approve": Command("approve", "approve"),
    "deny": Command("approve", "deny"),
}


def _typer() -> typer.Typer:
    return typer.Typer(
        name="hactl",
        help="Keep an OpenStack control plane highly available: keepalived, HAProxy, Galera, "
        "RabbitMQ, driven by events over NATS.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    )


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


def make_app(only: str | None = None) -> typer.Typer:
    """The CLI with every command of :data:`COMMANDS`, or with ``only`` that one."""
    app = _typer()
    app.callback()(root)
    for name, cmd in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(f"hactl.cli.{cmd.module}"), cmd.attr)
        if cmd.group:
            app.add_typer(target, name=name)
        else:
            app.command(name=name)(target)
    return app


@cache
def _full() -> typer.Typer:
    return make_app()


def __getattr__(name: str) -> typer.Typer:
    """``hactl.cli.app.app``: the whole CLI (the docs' reference and the tests read it)."""
    if name == "app":
        return _full()
    raise AttributeError(name)


def main() -> None:
    """Console-script entry point: only the command being run is imported."""
    from hactl.cli.entry import command_of  # noqa: PLC0415 - entry imports this module lazily

    name = command_of(sys.argv[1:])
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    only = name if name in COMMANDS and not completing else None
    try:
        make_app(only)()
    except KeyboardInterrupt:  # Ctrl-C outside an event loop (e.g. while parsing)
        raise SystemExit(130) from None
