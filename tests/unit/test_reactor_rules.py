"""The rule file format's documentation stays true: the example in the loader's docstring."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hactl.master.reactor.rules import rule as module
from hactl.master.reactor.rules.actions import REGISTRY
from hactl.master.reactor.rules.rule import load_rules

pytestmark = pytest.mark.unit


def test_the_module_docstring_example_loads(tmp_path: Path) -> None:
    """The example in master/reactor/rules/rule.py's docstring is a valid rule file."""
    doc = module.__doc__ or ""
    example = doc.split("A file holds a list of rules::", 1)[1].split("\n(An illustration", 1)[0]
    (tmp_path / "example.yaml").write_text(textwrap.dedent(example))
    [loaded] = load_rules(tmp_path, REGISTRY)
    assert loaded.name == "galera-node-out" and loaded.lock == "galera" and loaded.max_count == 3
