"""``hactl auth``: identities, keys and the nats-server authorization of a deployment.

Every change re-renders ``nats-auth.conf`` in the auth directory; nats-server applies it on a
reload (SIGHUP, or ``nats-server --signal reload``) without dropping the other connections. The
embedded server of a master running on this host with this auth directory is reloaded here.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from hactl.auth import store
from hactl.auth.perms import render_authorization
from hactl.bus.embedded import ServerAuth, ServerOptions
from hactl.cli import auth_check
from hactl.cli.runner import fail, print_json, settings_of
from hactl.config import LOCAL_ADMIN, recorded_url
from hactl.errors import ConfigError, HactlError, UsageError
from hactl.wire.tags import MASTER_ID

app = typer.Typer(
    help="Identities, keys and NATS permissions (docs/security.md).", no_args_is_help=True
)

DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        envvar="HACTL_AUTH_DIR",
        help="Auth directory (default: the embedded master's, <data-dir>/auth)",
    ),
]


def _dir(ctx: typer.Context, given: Path | None) -> Path:
    return given if given is not None else settings_of(ctx).data_dir / "auth"


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _reload(ctx: typer.Context, root: Path) -> None:
    """Reload the embedded server if it runs with this auth directory; else say how."""
    record = recorded_url(settings_of(ctx).data_dir)
    if record is not None and record.auth_dir and Path(record.auth_dir).resolve() == root.resolve():
        os.kill(record.server_pid, signal.SIGHUP)
        typer.echo(f"reloaded the embedded nats-server (pid {record.server_pid})", err=True)
    else:
        typer.echo(
            f"now reload every nats-server that includes {root / 'nats-auth.conf'} "
            "(nats-server --signal reload)",
            err=True,
        )


@app.command("init")
def init(
    ctx: typer.Context,
    nodes: Annotated[str, typer.Option(help="Minion ids, comma-separated")],
    folder: DirOpt = None,
    masters: Annotated[str, typer.Option(help="Master identities")] = MASTER_ID,
    admins: Annotated[str, typer.Option(help="Admin people")] = LOCAL_ADMIN,
    operators: Annotated[str, typer.Option(help="Operator people")] = "",
    host: Annotated[
        list[str] | None, typer.Option(help="Name or address of a NATS server (repeat)")
    ] = None,
) -> None:
    """Create an auth directory: CA, server certificate, one identity each."""
    root = _dir(ctx, folder)
    try:
        store.init(
            root,
            nodes=_split(nodes),
            masters=_split(masters),
            admins=_split(admins),
            operators=_split(operators),
            hosts=host or ["127.0.0.1", "localhost"],
        )
    except HactlError as exc:
        fail(exc)
    typer.echo(f"auth directory {root}: credentials in {root / 'creds'} (mode 0600)")


def _change(ctx: typer.Context, folder: Path | None, what: str, name: str, role: str = "") -> None:
    root = _dir(ctx, folder)
    auth = store.AuthDir(root)
    try:
        if what == "person":
            ident = auth.add_person(name, role)
        elif what == "add":
            ident = auth.add(role, name)
        elif what == "revoke":
            ident = auth.revoke(name)
        else:
            ident = auth.rotate(name)
    except HactlError as exc:
        fail(exc)
    done = {"add": "added", "person": "added", "revoke": "revoked", "rotate": "rotated"}[what]
    typer.echo(f"{done} {ident.label} ({ident.public_key})")
    if what != "revoke":
        typer.echo(f"  credentials: {auth.creds(name)}")
    _reload(ctx, root)


@app.command("add-minion")
def add_minion(ctx: typer.Context, ident: str, folder: DirOpt = None) -> None:
    """A new node identity."""
    _change(ctx, folder, "add", ident, "minion")


@app.command("add-master")
def add_master(ctx: typer.Context, name: str, folder: DirOpt = None) -> None:
    """Another master identity."""
    _change(ctx, folder, "add", name, "master")


@app.command("add-person")
def add_person(
    ctx: typer.Context,
    name: str,
    role: Annotated[str, typer.Option(help="operator or admin")],
    folder: DirOpt = None,
) -> None:
    """A named person with a role."""
    _change(ctx, folder, "person", name, role)


@app.command("revoke")
def revoke(ctx: typer.Context, name: str, folder: DirOpt = None) -> None:
    """Refuse an identity from the next reload on (its connections are closed then)."""
    _change(ctx, folder, "revoke", name)


@app.command("rotate")
def rotate(ctx: typer.Context, name: str, folder: DirOpt = None) -> None:
    """A new key for an identity; the old one is refused from the next reload on."""
    _change(ctx, folder, "rotate", name)


@app.command("list")
def list_(
    ctx: typer.Context,
    folder: DirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON")] = False,
) -> None:
    """Every identity: kind, name, key, revoked."""
    try:
        entries = store.AuthDir(_dir(ctx, folder)).entries()
    except HactlError as exc:
        fail(exc)
    rows = [
        {
            "kind": e.identity.kind,
            "name": e.identity.name,
            "public_key": e.identity.public_key,
            "revoked": e.revoked,
        }
        for e in entries
    ]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        flag = "  REVOKED" if r["revoked"] else ""
        typer.echo(f"{r['kind']:<9} {r['name']:<20} {r['public_key']}{flag}")


@app.command("export")
def export(
    ctx: typer.Context,
    folder: DirOpt = None,
    server_config: Annotated[
        bool,
        typer.Option(
            "--server-config",
            help="A complete nats-server config for one member of a site's cluster "
            "(listen, TLS, accounts and users, JetStream, cluster routes with their own auth)",
        ),
    ] = False,
    name: Annotated[str, typer.Option(help="--server-config: the server's name")] = "nats-1",
    listen: Annotated[
        str, typer.Option(help="--server-config: host:port for clients")
    ] = "0.0.0.0:4222",
    cluster_listen: Annotated[
        str, typer.Option(help="--server-config: host:port for routes ('' = no cluster)")
    ] = "",
    route: Annotated[
        list[str] | None, typer.Option(help="--server-config: host:port of a member's routes")
    ] = None,
    store_dir: Annotated[Path, typer.Option(help="--server-config: JetStream's store")] = Path(
        "/var/lib/nats/jetstream"
    ),
    files_at: Annotated[
        Path | None,
        typer.Option(
            help="--server-config: where the server finds server.crt, server.key and ca.crt "
            "(default: this auth directory)"
        ),
    ] = None,
    handshake_first: Annotated[
        bool,
        typer.Option(
            "--handshake-first/--no-handshake-first",
            help="--server-config: TLS before the greeting (nats-server 2.10.4+; off for "
            "Debian 12's 2.9.10, and give hactl HACTL_TLS_HANDSHAKE_FIRST=0)",
        ),
    ] = True,
) -> None:
    """Print the nats-server ``authorization`` block (accounts, users and their permissions)
    for an existing cluster's config; with ``--server-config``, a whole config file."""
    try:
        root = _dir(ctx, folder)
        active = store.AuthDir(root).active()
        if not active:
            raise ConfigError("no active identity to export")
        if not server_config:
            typer.echo(render_authorization(active), nl=False)
            return
        host, _, port = listen.rpartition(":")
        c_host, _, c_port = cluster_listen.rpartition(":")
        if not host or not port.isdigit() or (cluster_listen and not c_port.isdigit()):
            raise UsageError("--listen and --cluster-listen take host:port")
        options = ServerOptions(
            data_dir=root,
            auth=ServerAuth(root, files_at=files_at, inline=True),
            host=host,
            port=int(port),
            name=name,
            store_dir=store_dir,
            cluster_port=int(c_port) if cluster_listen else 0,
            cluster_host=c_host,
            routes=tuple(route or ()),
        )
        text = options.config_text(handshake_first)
    except HactlError as exc:
        fail(exc)
    typer.echo(text, nl=False)


auth_check.register(app)
