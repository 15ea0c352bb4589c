"""``hactl version``."""

from __future__ import annotations

from typing import Annotated

import typer

from hactl import __version__
from hactl.cli.runner import print_json


def version(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """Print hactl's version."""
    if as_json:
        print_json({"version": __version__})
    else:
        typer.echo(f"hactl {__version__}")


def print_and_exit(value: bool) -> None:
    """``hactl --version``: the version, then exit 0 (an eager option: nothing else runs)."""
    if value:
        typer.echo(f"hactl {__version__}")
        raise typer.Exit(0)
