"""master.yaml: checked keys with file:line errors, and its place in the precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hactl.cli.app import app
from hactl.errors import ConfigError
from hactl.master.config import parse_master_config


def test_good_file_gives_only_the_keys_it_sets() -> None:
    """Known keys with the right types come back as written; absent keys are absent."""
    got = parse_master_config(
        "reactors: /r\npillar: [/p.yaml]\nlost_after: 45s\nreplicas: 3\nobserve: false\n", "m"
    )
    assert got == {
        "reactors": "/r",
        "pillar": ["/p.yaml"],
        "lost_after": "45s",
        "replicas": 3,
        "observe": False,
    }


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("port: 4222\nreplicass: 3\n", 2, "unknown argument(s) replicass"),
        ("replicas: three\n", 1, "replicas must be int"),
        ("port: 1\nlost_after: soon\n", 2, "bad duration 'soon'"),
        ("port: 1\nport: 2\n", 2, "duplicate key 'port'"),
        ("observe: 1\n", 1, "observe must be bool"),
        ("pillar: [3]\n", 1, "pillar: a list of file paths"),
    ],
)
def test_bad_file_is_a_file_line_error(text: str, line: int, why: str) -> None:
    """Unknown or duplicate keys, wrong types and bad durations name the file and line."""
    with pytest.raises(ConfigError) as err:
        parse_master_config(text, "/etc/hactl/master.yaml")
    assert err.value.line == line and why in str(err.value), str(err.value)


def test_cli_refuses_a_bad_file_before_starting_anything(tmp_path: Path) -> None:
    """`hactl master --config bad.yaml`: one line naming file:line, exit 2, nothing started."""
    bad = tmp_path / "master.yaml"
    bad.write_text("reconcile_interval: often\n")
    result = CliRunner().invoke(app, ["master", "--config", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:1" in result.output and "bad duration 'often'" in result.output
