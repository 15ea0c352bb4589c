"""``hactl keystone rotate``: rotate Keystone's fernet keys on every controller, safely.

1. The site's current repository (the pillar secret ``keystone.fernet_keys``, the file
   ``--keys``) is pushed to every node with role keystone: each must answer that it holds it
   exactly (the state ``keystone_fernet_keys`` alone). A node that does not: nothing rotates
   (a node missing the staged key would reject the tokens signed with it once promoted).
2. The file is rotated the way ``keystone-manage fernet_rotate`` does it
   (hactl/master/keystone_keys.py) and replaced atomically.
3. The new repository is pushed to every node (new keys written first on each).

Between 2 and 3 and during 3, every token validates everywhere: the new primary is the
staged key step 1 put on every node, and the old primary stays until the next rotation.
Keystone reads the repository per token: no restart. Exit 0 when every node has the new keys,
1 when the push of step 3 failed somewhere (re-run ``hactl apply``), 2 when nothing rotated.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hactl.bus import Bus
from hactl.cli.runner import fail, print_json, run, settings_of
from hactl.config import resolve_connection
from hactl.errors import ConfigError, HactlError
from hactl.master import keystone_keys
from hactl.master.apply import ApplyReport, apply_plans
from hactl.master.states.compile import Plan, compile_tree
from hactl.master.states.tree import load_tree

app = typer.Typer(help="Keystone chores across the controllers.", no_args_is_help=True)
RESOURCE = "keystone.fernet_keys"
ENV = "HACTL_KEYSTONE_FERNET_KEYS"


def _plans(states: Path, pillar: list[Path] | None) -> tuple[dict[str, Plan], int, str]:
    """The fernet resource alone, for every node with role keystone; max_active_keys; the
    repository the pillar resolved."""
    tree = load_tree(states, pillar)
    ks = tree.pillar.get("keystone") or {}
    nodes = sorted(n.id for n in tree.targets("role:keystone"))
    if not nodes or not ks.get("fernet_keys"):
        raise ConfigError("no node has role keystone, or pillar keystone.fernet_keys is unset")
    plans = {}
    for node, plan in compile_tree(tree, nodes).items():
        mine = tuple(r for r in plan.resources if r.type == RESOURCE)
        if not mine:
            raise ConfigError(f"{node}: its plan has no {RESOURCE} resource (state keystone)")
        plans[node] = dataclasses.replace(plan, resources=mine)
    return plans, int(ks.get("max_active_keys", 3)), str(ks["fernet_keys"])


def _failures(report: ApplyReport, plans: dict[str, Plan]) -> list[str]:
    got = {r.minion: r for r in report.results}
    out = []
    for node in sorted(plans):
        r = got.get(node)
        if r is None:
            out.append(f"{node}: no answer")
        elif r.status != "ok":
            why = r.detail or "; ".join(str(x.get("comment", "")) for x in r.resources)
            out.append(f"{node}: {r.status} {why}".strip())
    return out


@app.command()
def rotate(
    ctx: typer.Context,
    states: Annotated[Path, typer.Argument(help="The state tree (top.yaml, pillar/, states)")],
    keys: Annotated[
        Path, typer.Option(help="The repository file the pillar reads (keystone.fernet_keys)")
    ] = Path("/etc/hactl/keystone-fernet-keys"),
    pillar: Annotated[
        list[Path] | None,
        typer.Option("--pillar", help="Extra pillar file, merged last (repeatable)"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each minion")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON")] = False,
) -> None:
    """Rotate the fernet keys: check every node holds the current ones, rotate, push."""
    settings = settings_of(ctx)
    console = Console(stderr=as_json)
    try:
        if os.environ.get(ENV):
            raise ConfigError(f"{ENV} is set: the pillar reads it, not {keys}; unset it")
        current = keystone_keys.parse(keys.read_text(encoding="utf-8"), str(keys))
        plans, max_active, resolved = _plans(states, pillar)
        if keystone_keys.parse(resolved) != current:
            raise ConfigError(f"the pillar's keystone.fernet_keys is not {keys}", file=str(keys))
    except OSError as exc:
        fail(ConfigError(f"cannot read: {exc.strerror}", file=str(keys)))
    except HactlError as exc:
        fail(exc)

    async def body() -> dict[str, Any]:
        bus = await Bus.connect(
            *resolve_connection(settings), name="hactl-keystone", timeout=settings.connect_timeout
        )
        try:
            before = await apply_plans(bus, plans, timeout=timeout)
            if bad := _failures(before, plans):
                return {
                    "rotated": False,
                    "why": "a node does not hold the current keys",
                    "nodes": bad,
                }
            rotated = keystone_keys.rotate(current, max_active)
            keystone_keys.write(keys, rotated)
            console.print(
                f"rotated {keys}: primary {max(rotated)}, staged 0, {len(rotated)} keys",
                soft_wrap=True,
            )
            after_plans, _, resolved = _plans(states, pillar)
            if keystone_keys.parse(resolved) != rotated:
                return {"rotated": True, "pushed": False, "why": "the pillar did not reread it"}
            after = await apply_plans(bus, after_plans, timeout=timeout)
            bad = _failures(after, after_plans)
            return {"rotated": True, "pushed": not bad, "primary": max(rotated), "nodes": bad}
        finally:
            await bus.close()

    out = run(body())
    if as_json:
        print_json(out)
    elif not out["rotated"]:
        console.print(f"[red]not rotated[/]: {out['why']}: {'; '.join(out['nodes'])}")
    elif not out.get("pushed"):
        console.print(f"[red]rotated, not on every node[/]: {out.get('why') or out['nodes']}")
    else:
        console.print(f"every node holds the new keys (primary {out['primary']})")
    if not out["rotated"]:
        raise typer.Exit(2)
    if not out.get("pushed"):
        raise typer.Exit(1)


__all__ = ["app"]
