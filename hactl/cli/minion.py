"""``hactl minion``: run the node agent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hactl.cli.runner import run, settings_of
from hactl.minion.main import serve


def minion(
    ctx: typer.Context,
    ident: Annotated[
        str | None, typer.Option("--id", help="Minion id (overrides the config)")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="minion.yaml")] = None,
) -> None:
    """Run the minion: beacons publish events, the master's commands are executed."""
    run(serve(settings_of(ctx), config, ident))
