"""``hactl minion``: its one body (:func:`serve`), and the lean entry without the full CLI
(argparse over the same options, see hactl.cli.entry)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from hactl.config import DEFAULT_CONNECT_TIMEOUT, Settings, default_data_dir, resolve_connection
from hactl.errors import HactlError
from hactl.log import configure
from hactl.minion.agent import Minion
from hactl.minion.config import load_config


def _env_flag(name: str, default: bool) -> bool:
    """A boolean environment variable as the full CLI (click) reads it."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "t", "yes", "y", "on"):
        return True
    if value in ("0", "false", "f", "no", "n", "off"):
        return False
    return default


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hactl", add_help=False)
    p.add_argument("--nats", default=os.environ.get("HACTL_NATS"))
    p.add_argument("--data-dir", type=Path, default=os.environ.get("HACTL_DATA_DIR"))
    p.add_argument("--log-format", choices=("json", "console", "auto"), default="auto")
    p.add_argument("--verbose", "-v", action="count", default=0)
    p.add_argument("--quiet", "-q", action="store_true")
    p.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT)
    p.add_argument("--creds", type=Path, default=os.environ.get("HACTL_CREDS"))
    p.add_argument("--tls-ca", type=Path, default=os.environ.get("HACTL_TLS_CA"))
    p.add_argument("--tls-cert", type=Path)
    p.add_argument("--tls-key", type=Path)
    p.add_argument(
        "--tls-handshake-first",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("HACTL_TLS_HANDSHAKE_FIRST", True),
    )
    p.add_argument("command", choices=("minion",))
    p.add_argument("--id", dest="ident")
    p.add_argument("--config", "-c", type=Path)
    return p


async def serve(settings: Settings, config: Path | None, ident: str | None) -> None:
    """The one body of ``hactl minion`` (lean path and full CLI alike): load minion.yaml, run
    until SIGTERM or SIGINT, then stop cleanly (a ``stop`` event, the outbox flushed)."""
    cfg = load_config(config, ident)
    url, auth = resolve_connection(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Minion(cfg, url, auth, settings.connect_timeout).run(stop)


def run_minion(argv: list[str]) -> None:
    """Parse, configure logging, run until SIGTERM/SIGINT; errors are one line, exit 2."""
    args = _parser().parse_args(argv)
    verbosity = -1 if args.quiet else args.verbose
    configure(args.log_format, verbosity)
    settings = Settings(
        nats_url=args.nats,
        data_dir=Path(args.data_dir) if args.data_dir else default_data_dir(),
        log_format=args.log_format,
        verbosity=verbosity,
        connect_timeout=args.connect_timeout,
        creds=args.creds,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_handshake_first=args.tls_handshake_first,
    )

    try:
        asyncio.run(serve(settings, args.config, args.ident))
    except HactlError as exc:
        print(f"hactl: error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
