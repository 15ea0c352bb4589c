"""``hactl minion``: run the node agent."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from hactl.cli.runner import run, settings_of
from hactl.config import resolve_connection
from hactl.minion.agent import Minion
from hactl.minion.config import load_config


def minion(
    ctx: typer.Context,
    ident: Annotated[
        str | None, typer.Option("--id", help="Minion id (overrides the config)")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="minion.yaml")] = None,
) -> None:
    """Run the minion: beacons publish events, the master's commands are executed."""
    settings = settings_of(ctx)

    async def body() -> None:
        cfg = load_config(config, ident)
        url, auth = resolve_connection(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await Minion(cfg, url, auth, settings.connect_timeout).run(stop)

    run(body())
