"""The console script: ``hactl minion`` takes a lean path, everything else the full CLI.

The minion is a daemon on every controller and must idle small (< 40 MB RSS). The full CLI
(typer, rich, and rich's tracebacks that structlog pulls in when rich is importable) costs
about 10 MB it never uses, so ``hactl [GLOBAL OPTIONS] minion ...`` is parsed here with
argparse -- same options, same meaning -- and ``--help`` still goes to the full CLI.
"""

from __future__ import annotations

import sys

_GLOBAL_WITH_VALUE = {
    "--nats",
    "--data-dir",
    "--log-format",
    "--connect-timeout",
    "--creds",
    "--tls-ca",
    "--tls-cert",
    "--tls-key",
}


def command_of(argv: list[str]) -> str | None:
    """The first positional word after the global options."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _GLOBAL_WITH_VALUE:
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return arg
    return None


def main() -> None:
    """Console-script entry point."""
    argv = sys.argv[1:]
    if command_of(argv) == "minion" and not {"--help", "-h"} & set(argv):
        sys.modules.setdefault("rich", None)  # type: ignore[arg-type]  # structlog: plain console
        from hactl.minion.main import run_minion  # noqa: PLC0415 - after blocking rich

        run_minion(argv)
        return
    from hactl.cli.app import main as full_main  # noqa: PLC0415 - only when needed

    full_main()
