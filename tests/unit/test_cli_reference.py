"""docs/cli-reference.md is what the CLI itself says (regenerate it when a command changes)."""

from __future__ import annotations

from pathlib import Path

from hactl.cli.app import app
from hactl.cli.reference import reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli-reference.md"


def test_the_reference_matches_the_cli() -> None:
    """Every command, option, default and env var in the file comes from the CLI objects;
    a stale file fails with the command that regenerates it."""
    assert DOC.read_text() == reference(app), (
        "docs/cli-reference.md is stale: .venv/bin/python -m hactl.cli.reference > "
        "docs/cli-reference.md"
    )
    assert "## `hactl history`" in DOC.read_text() and "`HACTL_MASTER_METRICS`" in DOC.read_text()
