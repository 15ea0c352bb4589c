"""Tier markers come from the folder: tests/unit -> unit, tests/integration -> integration, ..."""

from __future__ import annotations

from pathlib import Path

import pytest

_TIERS = ("unit", "integration", "lab")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with the tier its folder names."""
    root = Path(__file__).parent
    for item in items:
        rel = Path(str(item.fspath)).relative_to(root)
        tier = rel.parts[0] if rel.parts else ""
        if tier in _TIERS:
            item.add_marker(getattr(pytest.mark, tier))
