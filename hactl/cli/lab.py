"""``hactl lab``: three real controllers in network namespaces (root; see docs/lab.md)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from hactl.cli.runner import fail, print_json
from hactl.errors import HactlError
from hactl.lab import bus as lab_bus
from hactl.lab import lab as L
from hactl.lab.daemons import alive
from hactl.lab.net import LabError, exec_argv
from hactl.lab.power import power_off, power_on

app = typer.Typer(help="A lab of real controllers in network namespaces.", no_args_is_help=True)
DirOpt = Annotated[Path, typer.Option("--dir", help="The lab's folder")]
DEFAULT_DIR = Path("/tmp/hactl-lab")  # noqa: S108 - a root-only lab folder, by design
KILLABLE = ("haproxy", "keepalived", "galera", "rabbitmq", "minion", "nats", "standin")


def _load(folder: Path) -> L.Lab:
    try:
        return L.Lab.load(folder)
    except HactlError as exc:
        fail(exc)


@app.command("up")
def up(
    folder: DirOpt = DEFAULT_DIR,
    nodes: Annotated[int, typer.Option(help="Controllers")] = 3,
    components: Annotated[str, typer.Option(help="Comma list")] = ",".join(L.COMPONENTS),
    supervise: Annotated[
        bool, typer.Option(help="Minions restart a dead HAProxy or keepalived themselves")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print where it is and how to reach it as JSON")
    ] = False,
) -> None:
    """Build the lab: network, NATS cluster, master, minions, apply, Galera, RabbitMQ."""
    comps = {c.strip() for c in components.split(",") if c.strip()}
    if unknown := comps - set(L.COMPONENTS):
        fail(LabError(f"unknown component(s) {', '.join(sorted(unknown))}"))
    try:
        lab = L.up(
            folder,
            nodes,
            comps,
            say=lambda m: typer.echo(f"  {m}", err=True),
            supervise=supervise,
            ephemeral=False,  # it stays up after this command: `hactl lab down` ends it
        )
    except HactlError as exc:
        fail(exc)
    creds = lab.auth_dir / "creds" / (lab_bus.LAB_ADMIN + ".nk")
    if as_json:
        print_json(
            {
                "dir": str(folder),
                "nats": lab.nats_url,
                "creds": str(creds),
                "tls_ca": str(lab.auth_dir / "ca.crt"),
                "nodes": list(lab.net.nodes),
                "vips": [lab.net.vip(0), lab.net.vip(1)],
                "timings": lab.timings,
            }
        )
        return
    typer.echo(f"lab up in {folder}; NATS {lab.nats_url}")
    typer.echo(f"  export HACTL_NATS={lab.nats_url}")
    typer.echo(f"  export HACTL_CREDS={lab.auth_dir / 'creds' / (lab_bus.LAB_ADMIN + '.nk')}")
    typer.echo(f"  export HACTL_TLS_CA={lab.auth_dir / 'ca.crt'}")


@app.command("down")
def down(folder: DirOpt = DEFAULT_DIR) -> None:
    """Stop everything the lab started (by pid); remove namespaces, routes and files."""
    lab = _load(folder)
    problems = L.teardown(lab, say=lambda m: typer.echo(m, err=True))
    if problems:
        raise typer.Exit(1)


@app.command("status")
def status(
    folder: DirOpt = DEFAULT_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """Which processes live on which node, and who holds the VIPs."""
    lab = _load(folder)
    nodes = {n: {c: bool(lab.daemon_pid(n, c)) for c in KILLABLE} for n in lab.net.nodes}
    out = {
        "dir": str(folder),
        "nats": lab.nats_url,
        "master": alive(lab.pids.get("master")),
        "nodes": nodes,
        "vips": L.holders(lab),
        "timings": lab.timings,
    }
    if as_json:
        print_json(out)
        return
    typer.echo(f"lab {folder}  master {'up' if out['master'] else 'DOWN'}  NATS {lab.nats_url}")
    for n, comps in nodes.items():
        typer.echo(f"  {n}: " + "  ".join(f"{c} {'up' if ok else '-'}" for c, ok in comps.items()))
    for vip, holders in L.holders(lab).items():
        typer.echo(f"  VIP {vip}: {', '.join(holders) or 'nobody'}")


def _node(lab: L.Lab, node: str) -> str:
    if node not in lab.net.nodes:
        fail(LabError(f"no node {node} (nodes: {', '.join(lab.net.nodes)})"))
    return node


def _pid(lab: L.Lab, node: str, component: str) -> int:
    if node not in lab.net.nodes and not (node == "root" and component == "master"):
        fail(LabError(f"no node {node} (nodes: {', '.join(lab.net.nodes)})"))
    pid = lab.pids.get("master") if component == "master" else lab.daemon_pid(node, component)
    if not pid or not alive(pid):
        fail(LabError(f"{component} is not running on {node}"))
    return pid


@app.command("kill")
def kill(
    node: str,
    component: Annotated[str, typer.Argument(help=", ".join((*KILLABLE, "master")))],
    folder: DirOpt = DEFAULT_DIR,
) -> None:
    """kill -9 one component of one node (``master`` with node ``root``)."""
    lab = _load(folder)
    pid = _pid(lab, node, component)
    os.kill(pid, signal.SIGKILL)
    typer.echo(f"killed {component} on {node} (pid {pid})")


@app.command("stop")
def stop(node: str, folder: DirOpt = DEFAULT_DIR) -> None:
    """Power a node off: SIGKILL every process in its namespace, its links down."""
    lab = _load(folder)
    killed = power_off(lab, _node(lab, node))
    typer.echo(f"stopped {node}: {killed} process(es) killed, links down")


@app.command("start")
def start(node: str, folder: DirOpt = DEFAULT_DIR) -> None:
    """Power a stopped node on: no VIP left, links up, its NATS server and minion started."""
    lab = _load(folder)
    try:
        power_on(lab, _node(lab, node))
    except HactlError as exc:
        fail(exc)
    typer.echo(f"started {node}: its minion starts the rest")


def _link(lab: L.Lab, node: str, attach: bool) -> None:
    try:
        lab_bus.set_link(lab, node, attach)
    except HactlError as exc:
        fail(exc)


@app.command("partition")
def partition(node: str, folder: DirOpt = DEFAULT_DIR) -> None:
    """Cut a node off the bridge (carrier stays up: a silent partition)."""
    _link(_load(folder), node, attach=False)
    typer.echo(f"{node} partitioned")


@app.command("heal")
def heal(node: str, folder: DirOpt = DEFAULT_DIR) -> None:
    """Put a partitioned node back on the bridge."""
    _link(_load(folder), node, attach=True)
    typer.echo(f"{node} healed")


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(ctx: typer.Context, node: str, folder: DirOpt = DEFAULT_DIR) -> None:
    """Run a command inside a node's namespace: hactl lab exec ctl1 -- ip addr."""
    lab = _load(folder)
    if not ctx.args:
        fail(LabError("give the command after --"))
    raise typer.Exit(subprocess.call(exec_argv(lab.net, node, list(ctx.args))))
