"""``hactl init DIR``: a site's own, editable copy of the shipped states, pillar and rules."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from hactl.cli.runner import fail, print_json
from hactl.data import reactors_dir, states_dir
from hactl.errors import UsageError


def init(
    directory: Annotated[Path, typer.Argument(help="A new or empty folder for the site")],
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON")] = False,
) -> None:
    """Copy the shipped state tree (with its pillar, states/pillar/site.yaml, to edit) and
    reactor rules into DIR: DIR/states and DIR/reactors. Refuses a folder that has files."""
    try:
        if directory.exists() and any(directory.iterdir()):
            raise UsageError(f"{directory} is not empty: pick a new folder")
        directory.mkdir(parents=True, exist_ok=True)
        for name, src in (("states", states_dir()), ("reactors", reactors_dir())):
            shutil.copytree(src.resolve(), directory / name, symlinks=False)
    except OSError as exc:
        fail(UsageError(f"cannot write {directory}: {exc.strerror or exc}"))
    except UsageError as exc:
        fail(exc)
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    if as_json:
        print_json({"dir": str(directory), "files": files})
        return
    typer.echo(f"wrote {len(files)} files into {directory}:")
    typer.echo(f"  edit {directory}/states/pillar/site.yaml (nodes, VIPs, secrets' sources)")
    typer.echo(
        f"  then: hactl render {directory}/states --minion ctl1;"
        f" hactl apply {directory}/states --test"
    )
    typer.echo(f"  rules: hactl master --reactors {directory}/reactors")
