"""Keystone's resources on the minion: the fernet repository is checked before anything is
written and written new-first; keystone.conf is read by the oslo.config policy; database and
user names stay identifiers."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

from hactl.minion.executors import galera_database, keystone
from hactl.minion.executors.base import CommandRefused, ExecContext
from hactl.minion.executors.policy import ContentPolicy, PolicyViolation, check_content

GOLDEN = Path(__file__).parent / "golden" / "states"


def key(n: int) -> str:
    return base64.urlsafe_b64encode(bytes([n]) * 32).decode()


def repo(*indexes: int, base: int = 0) -> str:
    return "\n".join(f"{i} {key(base + i)}" for i in indexes)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0 " + key(0), "a repository has a staged key"),
        ("1 " + key(1) + "\n2 " + key(2), "a repository has a staged key"),
        ("0 " + key(0) + "\n1 short=", "not a Fernet key"),
        ("0 " + key(0) + "\n1 " + key(1) + "\n1 " + key(2), "index 1 twice"),
        ("0 " + key(0) + "\n01 " + key(1), "not 'INDEX KEY'"),
        ("0 " + key(0) + "\n1 " + key(1) + " extra", "not 'INDEX KEY'"),
        ("0 " + key(0) + "\n1 " + base64.b64encode(b"\xff" * 32).decode(), "not a Fernet"),
    ],
)
def test_a_bad_repository_is_refused_without_naming_a_key(text: str, why: str) -> None:
    """Each malformed key list is refused, and the reason never carries key material."""
    with pytest.raises(CommandRefused) as exc:
        keystone.parse_keys(text)
    assert why in exc.value.reason
    assert key(0) not in exc.value.reason and key(1) not in exc.value.reason


async def test_the_folder_becomes_exactly_the_repository(tmp_path: Path) -> None:
    """Keys are written 0600 in a 0700 folder; a rotation adds the new primary, replaces the
    staged key and removes the oldest; an unchanged repository changes nothing."""
    ctx = ExecContext(minion_id="ctl1", allowed_roots=(tmp_path,))
    folder = tmp_path / "fernet-keys"
    (tmp_path / "fernet-keys").mkdir()
    (folder / "README").write_text("not a key\n")
    first = await keystone.fernet_keys(ctx, {"dir": str(folder), "keys": repo(0, 1, 2)}, False)
    assert first["result"] is True and first["changes"] == {"added": [2, 1, 0]}
    assert keystone.present(folder) == {0: key(0), 1: key(1), 2: key(2)}
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert all(oct((folder / n).stat().st_mode & 0o777) == "0o600" for n in "012")
    again = await keystone.fernet_keys(ctx, {"dir": str(folder), "keys": repo(0, 1, 2)}, False)
    assert again["changes"] == {}
    rotated = f"0 {key(9)}\n2 {key(2)}\n3 {key(0)}"  # staged 0 promoted to 3, 1 retired
    dry = await keystone.fernet_keys(ctx, {"dir": str(folder), "keys": rotated}, True)
    assert dry["result"] is None and keystone.present(folder)[0] == key(0)
    done = await keystone.fernet_keys(ctx, {"dir": str(folder), "keys": rotated}, False)
    assert done["changes"] == {"added": [3], "replaced": [0], "removed": [1]}
    assert keystone.present(folder) == {0: key(9), 2: key(2), 3: key(0)}
    assert (folder / "README").exists()
    assert key(9) not in str(done) and not any(n.startswith(".") for n in os.listdir(folder))


async def test_a_folder_outside_the_allowed_roots_is_refused(tmp_path: Path) -> None:
    """The repository's folder must lie under one of the minion's allowed roots."""
    ctx = ExecContext(minion_id="ctl1", allowed_roots=(tmp_path / "mine",))
    with pytest.raises(CommandRefused):
        await keystone.fernet_keys(ctx, {"dir": str(tmp_path / "x"), "keys": repo(0, 1)}, False)


def test_keystone_db_needs_the_minions_keystone_section() -> None:
    """Without a keystone section in minion.yaml the resource is refused, not guessed."""
    import asyncio

    with pytest.raises(CommandRefused, match="no keystone section"):
        asyncio.run(keystone.keystone_db(ExecContext(minion_id="x"), {"region": "R"}, True))


OSLO_REFUSED = [
    ("[DEFAULT]\nlog_config_append = /etc/keystone/logging.conf\n", "log_config_append"),
    ("[DEFAULT]\nLog-Config-Append: /etc/keystone/x\n", "log_config_append"),
    ("[eventlet_server]\nbackdoor_port = 4444\n", "backdoor_port"),
    ("[DEFAULT]\nconfig_dir = /tmp\n", "config_dir"),
    ("[oslo_policy]\npolicy_dirs = /tmp\n", "policy_dirs"),
    ("[database]\nconnection = sqlite:////root/.ssh/authorized_keys\n", "mysql+pymysql"),
    ("[DEFAULT]\nlog_file = /root/.bashrc\n", "outside"),
    ("[fernet_tokens]\nkey_repository = /etc/keystone/../shadow\n", "outside"),
    ("[DEFAULT]\ndebug = true\n  log_config_append = /x\n", "indented"),
    ("[DEFAULT]\njust words\n", "not [section]"),
]


@pytest.mark.parametrize(("text", "why"), OSLO_REFUSED)
def test_keystone_conf_is_read_by_the_oslo_policy(text: str, why: str) -> None:
    """Options that load code or files, a path outside oslo_dirs, a non-MySQL database and a
    continuation line are refused in any file the oslo format covers."""
    with pytest.raises(PolicyViolation, match=re.escape(why)):
        check_content(text, ContentPolicy(), path="/etc/keystone/keystone.conf")


def test_the_shipped_keystone_conf_passes() -> None:
    """The golden keystone.conf of every node passes the default policy."""
    for conf in sorted(GOLDEN.glob("*/etc/keystone/keystone.conf")):
        check_content(conf.read_text(), ContentPolicy(), path="/etc/keystone/keystone.conf")


@pytest.mark.parametrize(
    "args",
    [
        {"name": "keystone`; DROP", "user": "keystone", "host": "%"},
        {"name": "keystone", "user": "k'eystone", "host": "%"},
        {"name": "keystone", "user": "keystone", "host": "% OR 1"},
        {"name": "Keystone", "user": "keystone", "host": "%"},
    ],
)
def test_database_and_user_names_stay_identifiers(args: dict[str, str]) -> None:
    """A name or host that SQL could read as more than an identifier is refused."""
    with pytest.raises(CommandRefused):
        galera_database.check_names(args)


def test_the_compiled_plans_carry_a_repository_the_minion_accepts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every node's keystone.fernet_keys arguments, compiled from the shipped tree, parse on
    the minion into the pillar's keys; the passwords arrive as given."""
    from hactl.master.states.compile import compile_tree
    from hactl.master.states.tree import load_tree
    from tests.support.keystone_keys import ENV, FERNET_KEYS
    from tests.support.shipped_tree import shipped_tree

    states = shipped_tree(tmp_path, monkeypatch)
    tree = load_tree(states)
    plans = compile_tree(tree, sorted(tree.nodes))
    wanted = {int(i): k for i, k in (line.split() for line in FERNET_KEYS.splitlines())}
    for plan in plans.values():
        (res,) = [r for r in plan.resources if r.type == "keystone.fernet_keys"]
        assert keystone.parse_keys(str(res.args["keys"])) == wanted
    writer = [r for r in plans["ctl1"].resources if r.type in ("keystone.db", "galera.database")]
    assert [r.args.get("password") or r.args.get("admin_password") for r in writer] == [
        ENV["HACTL_KEYSTONE_DB_PASSWORD"],
        ENV["HACTL_KEYSTONE_ADMIN_PASSWORD"],
    ]
