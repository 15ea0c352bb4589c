"""The CLI reference, generated from the CLI itself (``docs/cli-reference.md``).

Every command and group, its help, and each option with its default and environment variable,
read from the Typer/Click objects the CLI runs with -- so the reference cannot drift from the
code; a test compares the file with this output.
"""

from __future__ import annotations

from typing import Any

import typer


def _opts(cmd: Any) -> list[str]:
    rows = []
    for p in cmd.params:
        if getattr(p, "hidden", False) or p.name in ("help",):
            continue
        names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts]) or f"`{p.name.upper()}`"
        kind = "argument" if p.param_type_name == "argument" else "option"
        help_text = " ".join(str(getattr(p, "help", "") or "").split()).replace("|", "\\|")
        extra = []
        default = getattr(p, "default", None)
        if kind == "option" and default not in (None, False, (), []) and not callable(default):
            extra.append(f"default `{default}`")
        if getattr(p, "envvar", None):
            extra.append(f"env `{p.envvar}`")
        if getattr(p, "required", False):
            extra.append("required")
        tail = f" ({'; '.join(extra)})" if extra else ""
        rows.append(f"| {names} | {help_text}{tail} |")
    return rows


def _walk(cmd: Any, path: list[str], out: list[str]) -> None:
    title = " ".join(path)
    doc = " ".join((cmd.help or "").split()).replace("|", "\\|")
    out += [f"## `{title}`", "", doc, ""] if doc else [f"## `{title}`", ""]
    rows = _opts(cmd)
    if rows:
        out += ["| option | what |", "|---|---|", *rows, ""]
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        _walk(sub, [*path, name], out)


def reference(app: typer.Typer) -> str:
    """The Markdown reference of ``app``."""
    root = typer.main.get_command(app)
    out = [
        "# CLI reference",
        "",
        "Generated from the CLI (`python -m hactl.cli.reference > docs/cli-reference.md`);",
        "docs/cli.md explains the commands, this lists every option.",
        "",
    ]
    _walk(root, ["hactl"], out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    from hactl.cli.app import app as _app

    print(reference(_app), end="")
