"""``hactl render``: compile a state tree offline for one minion, to review the exact files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hactl.cli.apply import PillarOpt, _compile
from hactl.cli.runner import fail, print_json
from hactl.errors import ConfigError, HactlError
from hactl.master.states.tree import redact


def render(
    states: Annotated[Path, typer.Argument(help="The state tree")],
    minion: Annotated[str, typer.Option("--minion", help="Render for this minion id")],
    out: Annotated[Path | None, typer.Option(help="Write the files under OUT/<minion>/")] = None,
    pillar: PillarOpt = None,
    show_secrets: Annotated[bool, typer.Option(help="Do not mask secret values")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON")] = False,
) -> None:
    """Render offline (grains from the pillar) so the exact files can be reviewed."""
    try:
        plan = _compile(states, minion, pillar)[0][minion] if "*" not in minion else None
    except KeyError:
        plan = None
    except HactlError as exc:
        fail(exc)
    if plan is None:
        fail(ConfigError(f"--minion needs one node id of pillar.nodes, got {minion!r}"))

    def shown(text: str) -> str:
        return text if show_secrets else redact(text, plan.secrets)

    if as_json:
        print_json(
            {
                "minion": plan.minion,
                "states": list(plan.states),
                "resources": [
                    {
                        **r.wire(),
                        "args": {
                            k: shown(v) if isinstance(v, str) else v for k, v in r.args.items()
                        },
                    }
                    for r in plan.resources
                ],
            }
        )
        return
    if out is not None:
        for path, content in plan.files().items():
            dest = out / plan.minion / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(shown(content), encoding="utf-8")
            typer.echo(str(dest))
        return
    for r in plan.resources:
        typer.echo(f"# {r.id}: {r.type} ({r.state}/init.yaml)")
        if r.type == "file.managed":
            typer.echo(f"# --- {r.args['path']} (mode {r.args['mode']})")
            typer.echo(shown(str(r.args["contents"])))
        else:
            typer.echo("#     " + ", ".join(f"{k}={v}" for k, v in r.args.items() if v is not None))


__all__ = ["render"]
