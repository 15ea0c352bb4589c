"""The console script's routing: `hactl minion` takes the lean path, the rest the full CLI."""

from __future__ import annotations

from hactl.cli.entry import command_of as _command


def test_command_after_global_options() -> None:
    """The command is the first word after global options and their values."""
    assert _command(["--nats", "nats://x:1", "-v", "minion", "--id", "a"]) == "minion"
    assert _command(["--log-format", "json", "--connect-timeout", "2", "minion"]) == "minion"
    assert _command(["events", "tail"]) == "events"
    assert _command(["--nats", "minion"]) is None  # "minion" is the URL here, not the command
    assert _command([]) is None


def test_version_flag_prints_and_exits_zero() -> None:
    """`hactl --version` prints the version and exits 0 without running a command."""
    from typer.testing import CliRunner

    from hactl import __version__
    from hactl.cli.app import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"hactl {__version__}"


def test_every_command_of_the_table_is_registered_once() -> None:
    """The command table and the whole CLI agree: every name once, sub-apps as groups."""
    import typer

    from hactl.cli.app import COMMANDS, app, make_app

    root = typer.main.get_command(app)
    assert sorted(root.commands) == sorted(COMMANDS)  # type: ignore[attr-defined]  # a group
    only = typer.main.get_command(make_app("lab"))
    assert list(only.commands) == ["lab"]  # type: ignore[attr-defined]  # a group
