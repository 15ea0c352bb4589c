"""The auth directory on disk and `hactl auth` as an operator uses it (files, modes, errors)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hactl.auth import store
from hactl.auth.client import ClientAuth
from hactl.errors import ConfigError
from tests.integration.procs import run_cli


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_init_writes_secrets_0600_and_keys_only_in_the_registry(tmp_path: Path) -> None:
    """Seeds, keys, route secret and the rendered block are 0600, the folder 0700; the
    registry and the rendered block carry public keys, never a seed."""
    auth = store.init(
        tmp_path / "a",
        nodes=["ctl1"],
        masters=["master"],
        admins=["root"],
        operators=["alice"],
        hosts=["127.0.0.1"],
    )
    assert _mode(auth.root) == 0o700
    for p in (
        auth.creds("ctl1"),
        auth.root / "ca.key",
        auth.server_key,
        auth.auth_conf,
        auth.root / "route.secret",
    ):
        assert _mode(p) == 0o600, p
    seed = auth.creds("ctl1").read_text().strip()
    assert seed.startswith("SU")
    assert seed not in (auth.root / "identities.json").read_text()
    assert seed not in auth.auth_conf.read_text()
    assert store.public_key_of(auth.creds("ctl1")) in auth.auth_conf.read_text()


def test_revoke_and_rotate_change_the_rendered_block(tmp_path: Path) -> None:
    """revoke drops the key from the block and the seed file; rotate swaps the key."""
    auth = store.init(
        tmp_path / "a",
        nodes=["ctl1", "ctl2"],
        masters=["master"],
        admins=[],
        operators=["alice"],
        hosts=["127.0.0.1"],
    )
    alice = auth.find("alice").identity.public_key
    auth.revoke("alice")
    assert alice not in auth.auth_conf.read_text()
    assert not auth.creds("alice").exists()
    old = auth.find("ctl2").identity.public_key
    new = auth.rotate("ctl2").public_key
    assert (
        new != old and new in auth.auth_conf.read_text() and old not in auth.auth_conf.read_text()
    )
    assert store.public_key_of(auth.creds("ctl2")) == new
    with pytest.raises(ConfigError, match="exists already"):
        auth.add("minion", "ctl1")
    with pytest.raises(ConfigError, match="revoked"):
        auth.rotate("alice")


def test_unreadable_credentials_are_config_errors(tmp_path: Path) -> None:
    """A missing or garbage seed file, or a cert without a key: a ConfigError naming the file."""
    bad = tmp_path / "bad.nk"
    bad.write_text("not a seed\n")
    with pytest.raises(ConfigError, match=r"bad\.nk"):
        ClientAuth(creds=bad).public_key()
    with pytest.raises(ConfigError, match="cannot read"):
        ClientAuth(creds=tmp_path / "missing.nk").public_key()
    with pytest.raises(ConfigError, match="go together"):
        ClientAuth(creds=bad, tls_cert=bad)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["auth", "add-person", "bob", "--role", "root"], "role 'root'"),
        (["auth", "revoke", "nobody"], "no identity named 'nobody'"),
        (["auth", "add-minion", "ctl1"], "exists already"),
        (["auth", "init", "--nodes", "x"], "exists already"),
        (["auth", "add-minion", "bad.id"], "1-64 characters"),
    ],
)
def test_auth_cli_errors_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    """Expected failures of `hactl auth`: one line, exit 2, no traceback."""
    init = run_cli(["auth", "init", "--dir", str(tmp_path / "a"), "--nodes", "ctl1"])
    assert init.returncode == 0, init.stderr
    res = run_cli([*args, "--dir", str(tmp_path / "a")])
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr
