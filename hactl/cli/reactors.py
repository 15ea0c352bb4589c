"""``hactl reactors check``: validate rule files (every action's arguments included)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hactl.cli.runner import fail, print_json
from hactl.errors import HactlError
from hactl.master.reactor.rules.actions import REGISTRY
from hactl.master.reactor.rules.rule import load_rules

app = typer.Typer(help="Reactor rules.", no_args_is_help=True)


@app.command("check")
def check(
    folder: Annotated[Path, typer.Argument(help="Folder of rule files (reactors/)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the rules as JSON")] = False,
) -> None:
    """Validate every rule file; exit 2 with file:line and the rule on the first error."""
    try:
        rules = load_rules(folder, REGISTRY)
    except HactlError as exc:
        fail(exc)
    if as_json:
        print_json(
            [
                {
                    "name": r.name,
                    "on": r.on.pattern,
                    "actions": [c.action for c in r.do],
                    "file": r.file,
                    "line": r.line,
                }
                for r in rules
            ]
        )
        return
    for r in rules:
        typer.echo(
            f"{r.file}:{r.line}: {r.name}: on {r.on.pattern} -> {', '.join(c.action for c in r.do)}"
        )
    typer.echo(f"{len(rules)} rule(s) OK")
