"""A ``hactl`` run imports only the command it runs (hactl/cli/app.py's table)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
sys.argv = ["hactl", *sys.argv[1:]]
from hactl.cli.app import main
try:
    main()
except SystemExit:
    pass
heavy = ("hactl.master.daemon", "hactl.cli.lab", "hactl.master.states.tree", "hactl.cli.apply")
print(",".join(m for m in heavy if m in sys.modules), file=sys.stderr)
"""


def _loaded(*argv: str) -> str:
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return res.stderr.strip().splitlines()[-1] if res.stderr.strip() else ""


def test_a_command_imports_its_own_module_only() -> None:
    """``hactl version`` loads neither the master, the lab nor the state compiler; ``hactl
    --help`` (the whole table) does load them."""
    assert _loaded("version") == ""
    assert "hactl.cli.lab" in _loaded("--help")
