"""NATS URL resolution and the master's URL record."""

from __future__ import annotations

from pathlib import Path

import pytest

from hactl.cli.fire import parse_pairs
from hactl.config import (
    Settings,
    UrlRecord,
    default_data_dir,
    format_url_record,
    parse_url_record,
    resolve_nats_url,
)
from hactl.errors import ConfigError, UsageError


def test_flag_beats_env() -> None:
    """--nats wins over $HACTL_NATS."""
    s = Settings(nats_url="nats://a:1", data_dir=Path("/nonexistent"))
    assert resolve_nats_url(s, {"HACTL_NATS": "nats://b:2"}) == "nats://a:1"
    s2 = Settings(nats_url=None, data_dir=Path("/nonexistent"))
    assert resolve_nats_url(s2, {"HACTL_NATS": "nats://b:2"}) == "nats://b:2"


def test_no_url_anywhere_is_a_clear_error() -> None:
    """Without flag, env or a live master the error says how to fix it."""
    s = Settings(nats_url=None, data_dir=Path("/nonexistent/hactl"))
    with pytest.raises(ConfigError, match="start `hactl master`"):
        resolve_nats_url(s, {})


def test_url_record_round_trip_and_bad_file() -> None:
    """The record a master writes parses back; a corrupt one names the file."""
    rec = UrlRecord(url="nats://127.0.0.1:4222", pid=10, server_pid=11)
    assert parse_url_record(format_url_record(rec), "x") == rec
    with pytest.raises(ConfigError, match=r"^/d/nats.json: "):
        parse_url_record("{", "/d/nats.json")


def test_default_data_dir_precedence() -> None:
    """$HACTL_DATA_DIR, then $XDG_STATE_HOME/hactl, then ~/.local/state/hactl."""
    assert default_data_dir({"HACTL_DATA_DIR": "/x"}) == Path("/x")
    assert default_data_dir({"XDG_STATE_HOME": "/s"}) == Path("/s/hactl")
    assert default_data_dir({"HOME": "/h"}) == Path("/h/.local/state/hactl")


def test_fire_pairs_parse_json_values() -> None:
    """key=value values are JSON when they parse, strings otherwise; --data-json is the base."""
    assert parse_pairs(["state=MASTER", "prio=150", "up=true", "x=null"], '{"a": [1]}') == {
        "a": [1],
        "state": "MASTER",
        "prio": 150,
        "up": True,
        "x": None,
    }
    with pytest.raises(UsageError):
        parse_pairs(["novalue"], None)
    with pytest.raises(UsageError):
        parse_pairs([], "[1]")


def test_check_commands_are_exact_argv_by_name() -> None:
    """check_commands: names of built-ins, or name -> [/absolute, ..., '{path}' once]."""
    import pytest

    from hactl.errors import ConfigError
    from hactl.minion.config import parse_config
    from hactl.minion.executors.base import DEFAULT_CHECKS

    assert parse_config("id: a\n", "m").check_commands == DEFAULT_CHECKS
    only = parse_config("id: a\ncheck_commands: [haproxy]\n", "m").check_commands
    assert only == {"haproxy": DEFAULT_CHECKS["haproxy"]}
    own = parse_config('id: a\ncheck_commands: {hx: [/opt/hx, -c, "{path}"]}\n', "m")
    assert own.check_commands == {"hx": ("/opt/hx", "-c", "{path}")}
    for bad in ('{hx: [hx, -c, "{path}"]}', "{hx: [/opt/hx, -c]}", "[sh]", "oops"):
        with pytest.raises(ConfigError, match="check_commands"):
            parse_config(f"id: a\ncheck_commands: {bad}\n", "m")


def test_minion_vrrp_section_is_checked_and_feeds_the_beacon_and_policy() -> None:
    """minion.yaml ``vrrp``: bad folders, instance names and limits are file:line errors; a
    good one gives the vrrp beacon its track_dir and lets keepalived's track files live there."""
    from hactl.errors import ConfigError
    from hactl.minion.config import parse_config

    beacon = "beacons:\n  vrrp: {fifo: /run/k.fifo}\n"
    good = parse_config(
        f"id: a\nvrrp: {{track_dir: /srv/t, instances: [VI_1]}}\n{beacon}", "m.yaml"
    )
    assert good.vrrp is not None and good.vrrp.max_seconds == 120
    assert good.beacons["vrrp"]["track_dir"] == "/srv/t"
    assert "/srv/t" in good.content_policy.track_dirs
    for bad, why in (
        ("{track_dir: t, instances: [VI_1]}", "absolute"),
        ("{track_dir: /t, instances: []}", "instances"),
        ("{track_dir: /t, instances: ['../x']}", "not a valid name"),
        ("{track_dir: /t, instances: [VI_1], max_seconds: 9999}", "max_seconds"),
        ("{track_dir: /t, instances: [VI_1], ttl: 3}", "unknown setting"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_config(f"id: a\nvrrp: {bad}\n", "m.yaml")
        assert why in str(err.value) and err.value.line == 2, str(err.value)


def test_beacon_options_are_checked_at_load() -> None:
    """A misspelt beacon option, a wrong type or range, a missing required option and an
    unreadable password file are file:line errors, before any beacon starts."""
    from hactl.errors import ConfigError
    from hactl.minion.config import parse_config

    for opts, why in (
        ("vrrp: {fifo: /f, intervall: 1}", "unknown argument(s) intervall"),
        ("vrrp: {fifo: /f, interval: fast}", "interval must be int or float"),
        ("haproxy: {socket: /s, interval: 0}", "interval must be from 0.05"),
        ("galera: {socket: /s}", "missing argument 'datadir'"),
        ("rabbitmq: {node: r@a, password_file: /nonexistent/pw}", "not a readable file"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_config(f"id: a\nbeacons:\n  {opts}\n", "m.yaml")
        assert why in str(err.value) and err.value.line == 2, str(err.value)


def test_service_pidfiles_are_absolute_paths() -> None:
    """services.<name>.pidfiles (a daemon's other processes' pid files) are kept as given;
    a relative path or a non-list is a file:line error naming the setting."""
    from hactl.errors import ConfigError
    from hactl.minion.config import parse_config

    svc = "services:\n  keepalived: {start: [k], pidfile: /r/k.pid, pidfiles: %s}\n"
    good = parse_config("id: a\n" + svc % "[/r/v.pid, /r/c.pid]", "m.yaml")
    assert good.services["keepalived"].pidfiles == ("/r/v.pid", "/r/c.pid")
    assert good.services["keepalived"].pidfile == "/r/k.pid"
    for bad in ("[r/v.pid]", "/r/v.pid", "[1]"):
        with pytest.raises(ConfigError, match="pidfiles") as err:
            parse_config("id: a\n" + svc % bad, "m.yaml")
        assert err.value.line == 2, str(err.value)


def test_service_pre_stop_is_an_argument_list() -> None:
    """services.<name>.pre_stop (run before a planned stop or restart: RabbitMQ's drain) is
    kept as an argument list; a string (a shell line) is a file:line error naming it."""
    from hactl.errors import ConfigError
    from hactl.minion.config import parse_config

    svc = "services:\n  rabbitmq-server: {pre_stop: %s}\n"
    good = parse_config("id: a\n" + svc % "[/usr/sbin/rabbitmq-upgrade, drain]", "m.yaml")
    assert good.services["rabbitmq-server"].pre_stop == ("/usr/sbin/rabbitmq-upgrade", "drain")
    assert parse_config("id: a\n" + svc % "[x]", "m.yaml").services["rabbitmq-server"].stop == ()
    with pytest.raises(ConfigError, match="pre_stop") as err:
        parse_config("id: a\n" + svc % "'rabbitmq-upgrade drain'", "m.yaml")
    assert err.value.line == 2, str(err.value)
