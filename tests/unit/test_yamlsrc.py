"""YAML sources (rules, states, pillar): aliases are refused with file and line."""

from __future__ import annotations

import pytest

from hactl import yamlsrc
from hactl.errors import ConfigError

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9)
)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("base: &b {x: 1}\nother: *b\n", 2),
        ("loop: &l [*l]\n", 1),  # a self-reference: was a RecursionError
        (LAUGHS, 2),  # nested aliases: each level 10x the work
    ],
)
def test_aliases_are_refused_with_file_and_line(text: str, line: int) -> None:
    """An alias is a ConfigError at its line, before anything expands."""
    with pytest.raises(ConfigError, match="aliases") as err:
        yamlsrc.load(text, "rules.yaml")
    assert err.value.file == "rules.yaml" and err.value.line == line


def test_an_anchor_alone_is_harmless() -> None:
    """An anchor nobody refers to changes nothing."""
    assert yamlsrc.load("a: &x 1\nb: 2\n", "f.yaml").data == {"a": 1, "b": 2}
