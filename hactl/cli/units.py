"""``hactl install-units``: write the shipped systemd units for this installation."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from hactl.cli.runner import fail, print_json
from hactl.data import shipped
from hactl.errors import UsageError

PLACEHOLDER = "/usr/local/bin/hactl"


def hactl_path() -> str:
    """The ``hactl`` this command runs as (a venv's, pipx's), for ExecStart."""
    here = Path(sys.argv[0])
    if here.name == "hactl" and here.exists():
        return str(here.resolve())
    beside = Path(sys.executable).parent / "hactl"  # the venv's, when run as `python -m`
    if beside.exists():
        return str(beside)
    return shutil.which("hactl") or PLACEHOLDER


def install_units(
    directory: Annotated[Path, typer.Option("--dir", help="Where systemd reads units")] = Path(
        "/etc/systemd/system"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite units that differ")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON")] = False,
) -> None:
    """Write hactl-master.service and hactl-minion.service (ExecStart: this hactl); then
    `systemctl daemon-reload` and `systemctl enable --now hactl-minion` (docs/deploy.md)."""
    exe = hactl_path()
    written, same = [], []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for unit in sorted(shipped("systemd").glob("*.service")):
            text = unit.read_text().replace(PLACEHOLDER, exe)
            target = directory / unit.name
            if target.exists() and target.read_text() == text:
                same.append(str(target))
                continue
            if target.exists() and not force:
                raise UsageError(f"{target} exists and differs (--force overwrites it)")
            target.write_text(text)
            written.append(str(target))
    except OSError as exc:
        fail(UsageError(f"cannot write units into {directory}: {exc.strerror}"))
    except UsageError as exc:
        fail(exc)
    if as_json:
        print_json({"written": written, "unchanged": same, "exec": exe})
        return
    for path in written:
        typer.echo(f"wrote {path}")
    for path in same:
        typer.echo(f"unchanged {path}")
    typer.echo("next: systemctl daemon-reload && systemctl enable --now hactl-minion")
