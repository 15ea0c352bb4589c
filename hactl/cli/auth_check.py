"""``hactl auth check``: what a site's running nats-server is missing for hactl.

A site may run its own NATS (its config written from ``hactl auth export``, or by hand). This
connects to it with the identities of an auth directory and reports, one line each with the
fix: whether the server takes TLS handshake-first; whether it knows every active identity
and refuses every revoked one (a config not reloaded since ``auth add-*`` / ``revoke``);
whether JetStream answers through the user account's imports, with a storage cap; and whether
the permission table is loaded (a minion's key may not publish as another minion). Exit 0 when
nothing is missing, 2 otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from hactl.auth import store
from hactl.auth.client import ClientAuth, for_identity
from hactl.bus import Bus
from hactl.bus.jetstream import storage_cap
from hactl.cli.runner import fail, print_json, run, settings_of
from hactl.errors import BusError, ConfigError, HactlError

CONNECT_TIMEOUT = 3.0
VIOLATION_WAIT = 1.0  # s for the server's "Permissions Violation" to come back


@dataclass(frozen=True, slots=True)
class Finding:
    """One check: its name, whether it holds, what was seen, and the fix when it does not."""

    check: str
    ok: bool
    detail: str
    fix: str = ""


async def _connect(url: str, auth: ClientAuth, name: str) -> Bus | str:
    try:
        return await Bus.connect(
            url, auth, name=f"hactl-auth-check-{name}", timeout=CONNECT_TIMEOUT
        )
    except BusError as exc:
        return exc.detail


def _as(root: Path, name: str, handshake_first: bool) -> ClientAuth:
    return dataclasses.replace(for_identity(root, name), tls_handshake_first=handshake_first)


async def _handshake(url: str, root: Path, master: str, first: bool) -> tuple[bool, Finding]:
    """Which TLS start the server takes: (handshake_first to use, the finding)."""
    got = await _connect(url, _as(root, master, first), master)
    if isinstance(got, Bus):
        await got.close(drain=False)
        how = "TLS before the greeting" if first else "TLS after the greeting (as configured)"
        return first, Finding("tls", True, how)
    if first:
        other = await _connect(url, _as(root, master, False), master)
        if isinstance(other, Bus):
            await other.close(drain=False)
            return False, Finding(
                "tls",
                False,
                "the server does not start TLS before its greeting (nats-server < 2.10.4)",
                "set HACTL_TLS_HANDSHAKE_FIRST=0 for every hactl process, or upgrade "
                "nats-server to 2.10.4+ and add handshake_first to its tls block",
            )
    return first, Finding("tls", False, f"cannot connect as {master}: {got}", "")


async def _jetstream(bus: Bus) -> Finding:
    try:
        cap = await storage_cap(bus, CONNECT_TIMEOUT)
    except BusError as exc:
        return Finding(
            "jetstream",
            False,
            f"no answer from JetStream's API through the user account: {exc.detail}",
            "enable JetStream and use the accounts block of `hactl auth export` (the store "
            "account exports $JS.API, the user account imports it)",
        )
    if cap is None:
        return Finding(
            "jetstream",
            False,
            "JetStream answers, but the store account has no storage cap",
            "give the store account max_file (hactl auth export writes it): an identity that "
            "floods the streams could fill the server's disk",
        )
    return Finding("jetstream", True, f"answers; the store account may hold {cap / 2**30:.1f} GiB")


async def _identity(url: str, root: Path, entry: store.Entry, first: bool) -> Finding:
    ident = entry.identity
    label = f"{ident.kind} {ident.name}"
    if entry.revoked and not root.joinpath("creds", f"{ident.name}.nk").is_file():
        return Finding(label, True, "revoked; its key is gone from this directory (not tried)")
    got = await _connect(url, _as(root, ident.name, first), ident.name)
    if isinstance(got, Bus):
        await got.close(drain=False)
        if entry.revoked:
            return Finding(
                label,
                False,
                "revoked, but the server still accepts it",
                "reload every nats-server with `hactl auth export` output",
            )
        return Finding(label, True, "connects")
    if entry.revoked:
        return Finding(label, True, "revoked, refused")
    return Finding(
        label,
        False,
        f"refused: {got}",
        "the server's config lacks this identity: `hactl auth export`, then reload",
    )


async def _permissions(url: str, root: Path, minions: list[str], first: bool) -> Finding:
    """A minion's key publishing another minion's beacon: the server must refuse it."""
    if len(minions) < 2:
        return Finding("permissions", True, "fewer than two minions: nothing to cross")
    me, other = minions[0], minions[1]
    got = await _connect(url, _as(root, me, first), me)
    if not isinstance(got, Bus):
        return Finding("permissions", False, f"cannot connect as minion {me}: {got}")
    try:
        await got.nc.publish(f"hactl.beacon.{other}.auth-check", b"")
        await got.sync()
        await asyncio.sleep(VIOLATION_WAIT)
        refused = any("permissions violation" in e.lower() for e in got.server_errors)
    finally:
        await got.close(drain=False)
    if refused:
        return Finding("permissions", True, f"minion {me} may not publish as {other}")
    return Finding(
        "permissions",
        False,
        f"minion {me} published as {other} unrefused: no permission table",
        "use the users and permissions of `hactl auth export`, then reload",
    )


async def check(url: str, root: Path, handshake_first: bool) -> list[Finding]:
    """Every finding for the server at ``url`` and the identities of ``root``."""
    entries = store.AuthDir(root).entries()
    masters = [e.identity.name for e in entries if e.identity.kind == "master" and not e.revoked]
    if not masters:
        raise ConfigError("no active master identity in the auth directory", file=str(root))
    first, tls = await _handshake(url, root, masters[0], handshake_first)
    out = [tls]
    bus = await _connect(url, _as(root, masters[0], first), masters[0])
    if isinstance(bus, Bus):
        try:
            v = bus.nc.connected_server_version
            out.append(Finding("server", True, f"nats-server {v.major}.{v.minor}.{v.patch}"))
            out.append(await _jetstream(bus))
        finally:
            await bus.close(drain=False)
    out += await asyncio.gather(*(_identity(url, root, e, first) for e in entries))
    minions = sorted(
        e.identity.name for e in entries if e.identity.kind == "minion" and not e.revoked
    )
    out.append(await _permissions(url, root, minions, first))
    return out


def register(app: typer.Typer) -> None:
    """Add ``check`` to ``hactl auth``."""

    @app.command("check")
    def check_cmd(
        ctx: typer.Context,
        folder: Annotated[
            Path | None,
            typer.Option("--dir", envvar="HACTL_AUTH_DIR", help="Auth directory"),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON document")] = False,
    ) -> None:
        """What the site's running nats-server (--nats) is missing for hactl, with the fix."""
        settings = settings_of(ctx)
        root = folder if folder is not None else settings.data_dir / "auth"
        if not settings.nats_url:
            fail(ConfigError("hactl auth check needs --nats URL (the site's server)"))
        try:
            findings = run(check(settings.nats_url, root, settings.tls_handshake_first))
        except HactlError as exc:
            fail(exc)
        if as_json:
            print_json([dataclasses.asdict(f) for f in findings])
        else:
            for f in findings:
                mark = "ok     " if f.ok else "MISSING"
                typer.echo(f"{mark} {f.check:<22} {f.detail}" + (f" -- {f.fix}" if f.fix else ""))
        missing = sum(not f.ok for f in findings)
        if missing:
            typer.echo(f"hactl: {missing} thing(s) missing on {settings.nats_url}", err=True)
            raise typer.Exit(2)
