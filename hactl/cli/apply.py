"""``hactl apply``: compile the state tree and push it to the minions, with progress."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from hactl.bus import Bus
from hactl.cli.runner import fail, print_json, run, settings_of
from hactl.config import resolve_connection
from hactl.errors import BusError, ConfigError, HactlError
from hactl.master.apply import (
    ApplyReport,
    MinionResult,
    apply_plans,
    publish_singletons,
    singleton_specs,
)
from hactl.master.rolling import default_gate, expression_gate, roll
from hactl.master.states.compile import Plan, compile_tree
from hactl.master.states.tree import load_tree
from hactl.timeparse import parse_duration

PillarOpt = Annotated[
    list[Path] | None,
    typer.Option("--pillar", help="Extra pillar file, merged last (repeatable)"),
]
EXIT_FAILED = 1


async def read_facts(bus: Bus) -> dict[str, Any]:
    """The cluster view the masters keep in KV, as rule facts."""
    from hactl.bus.viewstore import ViewStore  # noqa: PLC0415 - only when rolling
    from hactl.master.reactor.view import ClusterView  # noqa: PLC0415 - as above

    view = ClusterView()
    try:
        entries = await ViewStore(bus).load(lambda key, why: None)
    except BusError as exc:
        if "no KV bucket" not in exc.detail:
            raise
        entries = []  # no master has kept a view here: nothing is heard (the gate says so)
    for node, aspect, value, _ in entries:
        view.set(node, aspect, value)
    return view.facts()


def _compile(states: Path, target: str, pillar: list[Path] | None) -> dict[str, Plan]:
    tree = load_tree(states, pillar)
    nodes = tree.targets(target)
    if not nodes:
        raise ConfigError(
            f"no node of pillar.nodes matches {target!r} (nodes: {', '.join(sorted(tree.nodes))})"
        )
    plans = compile_tree(tree, sorted(n.id for n in nodes))
    singleton_specs(plans)  # one spec per singleton, before anything is pushed
    return plans


def _print_report(console: Console, report: ApplyReport) -> None:
    verb = "would change" if report.test else "changed"
    for res in report.results:
        for r in res.resources:
            if not r.get("changes") and r.get("result") is not False:
                continue
            mark = {True: "[green]ok[/]", None: "[yellow]test[/]", False: "[red]FAILED[/]"}
            what = escape(f"{r['id']} ({r['type']} {r.get('name') or ''})")
            console.print(
                f"[bold]{res.minion}[/] {what}: {mark.get(r.get('result'), '?')} - "
                f"{escape(str(r.get('comment', '')))}",
                highlight=False,
            )
            changes = dict(r.get("changes") or {})
            diff = changes.pop("diff", None)
            if diff:
                console.print(Syntax(diff.rstrip("\n"), "diff", theme="ansi_dark"))
            if changes:
                console.print(f"    {changes}", markup=False)
            if r.get("check_output"):
                console.print("    " + str(r["check_output"]).replace("\n", "\n    "), markup=False)
    table = Table(title=f"job {report.jid}" + (" (test: nothing changed)" if report.test else ""))
    for col in ("minion", "status", "resources", verb, "failed", "seconds"):
        table.add_column(col)
    colors = {"ok": "green", "failed": "red", "no_answer": "red", "error": "red"}
    for res in report.results:
        status = escape(res.status.replace("_", " ") + (f": {res.detail}" if res.detail else ""))
        table.add_row(
            res.minion,
            f"[{colors[res.status]}]{status}[/]",
            str(len(res.resources)),
            str(res.changed),
            str(res.failed),
            f"{res.seconds:.2f}",
        )
    console.print(table)


def apply(
    ctx: typer.Context,
    states: Annotated[Path, typer.Argument(help="The state tree (top.yaml, pillar/, states)")],
    test: Annotated[bool, typer.Option("--test", help="Change nothing; show the diffs")] = False,
    target: Annotated[str, typer.Option(help="Minion id glob or role:NAME")] = "*",
    pillar: PillarOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each minion")] = 60.0,
    batch: Annotated[
        int, typer.Option(min=0, help="Roll: this many nodes at a time, healthy between (0: all)")
    ] = 0,
    gate: Annotated[
        str | None,
        typer.Option(help="Roll: the health gate, an expression over cluster (default: all UP)"),
    ] = None,
    wait: Annotated[str, typer.Option(help="Roll: how long the gate may take per batch")] = "120s",
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON")] = False,
) -> None:
    """Render the state tree and apply it on every targeted minion (exit 0 only if all ok).
    With --batch N: N nodes at a time, the next batch only once the gate holds."""
    settings = settings_of(ctx)
    try:
        plans = _compile(states, target, pillar)  # every error before anything is pushed
        check = expression_gate(gate) if gate else default_gate
        wait_s = parse_duration(wait)
    except HactlError as exc:
        fail(exc)
    console = Console(stderr=as_json)
    show = not as_json and sys.stderr.isatty()

    async def body() -> ApplyReport:
        bus = await Bus.connect(
            *resolve_connection(settings), name="hactl-apply", timeout=settings.connect_timeout
        )
        try:
            progress = Progress(
                TextColumn("applying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                disable=not show,
                transient=True,
            )
            with progress:
                task = progress.add_task("apply", total=len(plans))

                def done(_: MinionResult) -> None:
                    progress.advance(task)

                await bus.audit(
                    "apply", {"targets": sorted(plans), "test": test, "states": str(states)}
                )
                if not test:
                    specs = singleton_specs(plans)
                    for line in await publish_singletons(bus, specs, whole_tree=target == "*"):
                        console.print(line, soft_wrap=True)
                if batch <= 0 or test:
                    return await apply_plans(bus, plans, test=test, timeout=timeout, on_done=done)
                results: list[MinionResult] = []
                first: list[str] = []

                async def one(group: list[str]) -> bool:
                    part = await apply_plans(
                        bus, {n: plans[n] for n in group}, timeout=timeout, on_done=done
                    )
                    first.append(part.jid)
                    results.extend(part.results)
                    return part.ok

                async def facts() -> dict[str, Any]:
                    return await read_facts(bus)

                stopped = await roll(
                    sorted(plans),
                    batch,
                    one,
                    facts,
                    check,
                    wait_s,
                    say=lambda m: console.print(f"[bold]roll[/] {m}", soft_wrap=True),
                )
                if stopped is not None:
                    console.print(
                        f"[red]roll stopped after batch {stopped.batch}"
                        f" ({', '.join(stopped.nodes)}): {stopped.why}[/]",
                        soft_wrap=True,
                    )
                    stop_reason.append(stopped.why)
                return ApplyReport(first[0] if first else "", False, tuple(results))
        finally:
            await bus.close()

    stop_reason: list[str] = []
    report = run(body())
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(console, report)
    if not report.ok or stop_reason or len(report.results) < len(plans):
        raise typer.Exit(EXIT_FAILED)
