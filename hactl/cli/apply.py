"""``hactl apply``: compile the state tree and push it to the minions, with progress."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
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
from hactl.master.rolling import (
    default_gate,
    disturbed_by,
    disturbed_states,
    expression_gate,
    roll,
    split_rolling,
    state_gates,
)
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
    from hactl.master.reactor.view.cluster import ClusterView  # noqa: PLC0415 - as above

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


def _compile(
    states: Path, target: str, pillar: list[Path] | None
) -> tuple[dict[str, Plan], dict[str, int], dict[str, str]]:
    tree = load_tree(states, pillar)
    nodes = tree.targets(target)
    if not nodes:
        raise ConfigError(
            f"no node of pillar.nodes matches {target!r} (nodes: {', '.join(sorted(tree.nodes))})"
        )
    plans = compile_tree(tree, sorted(n.id for n in nodes))
    singleton_specs(plans)  # one spec per singleton, before anything is pushed
    used = {r.state for p in plans.values() for r in p.resources}
    gates = {s: g for s, g in sorted(tree.roll_gates.items()) if s in used}
    return plans, dict(tree.rolling), gates


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


@dataclass(frozen=True)
class _Push:
    """What one apply pushes, and how (the options, the progress callback)."""

    bus: Bus
    plans: dict[str, Plan]
    rolling: dict[str, int]
    test: bool
    batch: int
    #: the --gate / --batch gate; None: each rolled state's own gate (roll.yaml), for the
    #: states whose services the batch touched
    check: Callable[[Any], str] | None
    gates: dict[str, Callable[[Any], str]]
    wait_s: float
    timeout: float
    console: Console
    done: Callable[[MinionResult], None]


async def _push(p: _Push, stop_reason: list[str]) -> ApplyReport:
    """All at once; or a roll (--batch N); or a plain apply with states that must roll
    (roll.yaml): the other states everywhere, then those states N nodes at a time."""
    now, later, declared = split_rolling(p.plans, p.rolling)
    if p.test or (p.batch <= 0 and not later):
        return await apply_plans(p.bus, p.plans, test=p.test, timeout=p.timeout, on_done=p.done)
    results: list[MinionResult] = []
    first: list[str] = []
    todo, size = p.plans, p.batch
    if p.batch <= 0:
        names = sorted({r.state for plan in later.values() for r in plan.resources})
        p.console.print(
            f"[bold]roll[/] {', '.join(names)} must roll (roll.yaml): the other states "
            f"everywhere first, then {declared} node(s) at a time",
            soft_wrap=True,
        )
        part = await apply_plans(p.bus, now, timeout=p.timeout)
        first.append(part.jid)
        results.extend(part.results)
        if not part.ok:
            stop_reason.append("the states applied everywhere failed: nothing rolled")
            return ApplyReport(part.jid, False, merged(results))
        todo, size = later, declared

    rolled: list[MinionResult] = []  # the roll's own results (what a batch disturbed)
    last: set[str] = set()  # the states whose services the last batch touched

    async def one(group: list[str]) -> bool:
        part = await apply_plans(
            p.bus, {n: todo[n] for n in group}, timeout=p.timeout, on_done=p.done
        )
        first.append(part.jid)
        results.extend(part.results)
        rolled.extend(part.results)
        last.clear()
        last.update(disturbed_states(part.results, group))
        return part.ok

    async def facts() -> dict[str, Any]:
        return await read_facts(p.bus)

    stopped = await roll(
        sorted(todo),
        size,
        one,
        facts,
        p.check or state_gates(p.gates, lambda: last),
        p.wait_s,
        say=lambda m: p.console.print(f"[bold]roll[/] {m}", soft_wrap=True),
        # --batch N waits for the gate after every batch; a declared roll only where a
        # service was started, restarted or reloaded (first deployments, unchanged configs)
        disturbed=(lambda g: True) if p.batch > 0 else (lambda g: disturbed_by(rolled, g)),
    )
    if stopped is not None:
        p.console.print(
            f"[red]roll stopped after batch {stopped.batch}"
            f" ({', '.join(stopped.nodes)}): {stopped.why}[/]",
            soft_wrap=True,
        )
        stop_reason.append(stopped.why)
    return ApplyReport(first[0] if first else "", False, merged(results))


def merged(results: list[MinionResult]) -> tuple[MinionResult, ...]:
    """One result per minion: a plain apply with a roll answers twice per node (the states
    applied everywhere, then the rolled ones)."""
    out: dict[str, MinionResult] = {}
    for r in results:
        had = out.get(r.minion)
        if had is None:
            out[r.minion] = r
            continue
        status = had.status if had.status != "ok" else r.status
        detail = "; ".join(x for x in (had.detail, r.detail) if x)
        out[r.minion] = MinionResult(
            r.minion, status, had.resources + r.resources, detail, had.seconds + r.seconds
        )
    return tuple(out.values())


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
    With --batch N: N nodes at a time, the next batch only once the gate holds; without it,
    states that declare they must roll (roll.yaml) roll, the others apply everywhere."""
    settings = settings_of(ctx)
    try:
        plans, rolling, declared = _compile(states, target, pillar)  # errors before any push
        check = expression_gate(gate) if gate else (None if batch <= 0 else default_gate)
        gates = {
            s: expression_gate(declared[s]) if s in declared else default_gate for s in rolling
        }
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
                return await _push(
                    _Push(
                        bus,
                        plans,
                        rolling,
                        test,
                        batch,
                        check,
                        gates,
                        wait_s,
                        timeout,
                        console,
                        done,
                    ),
                    stop_reason,
                )
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
