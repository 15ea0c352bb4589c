"""Fernet rotation as Keystone does it: the staged key becomes the primary, a fresh staged key
takes index 0, the oldest secondaries go; every key a node may have signed with survives one
rotation."""

from __future__ import annotations

from pathlib import Path

import pytest

from hactl.master import keystone_keys as kk
from hactl.minion.executors.keystone import fernet_key


def test_a_rotation_promotes_the_staged_key_and_keeps_max_active() -> None:
    """{0:S0, 1:P1} -> {0:S2, 1:P1, 2:S0} -> {0:S3, 2:S0, 3:S2}: three keys at most."""
    first = kk.rotate({0: "S0", 1: "P1"}, 3, staged="S2")
    assert first == {0: "S2", 1: "P1", 2: "S0"}
    second = kk.rotate(first, 3, staged="S3")
    assert second == {0: "S3", 2: "S0", 3: "S2"}
    wider = kk.rotate(second, 5, staged="S4")
    assert wider == {0: "S4", 2: "S0", 3: "S2", 4: "S3"}


def test_every_key_in_use_survives_one_rotation() -> None:
    """The primary before a rotation (what an unrotated node signs with) and the staged key
    (what a rotated node signs with) are both in the rotated set."""
    keys = {0: "a", 1: "b"}
    for n in range(20):
        after = kk.rotate(keys, 3, staged=f"k{n}")
        assert keys[max(keys)] in after.values() and keys[0] == after[max(after)]
        keys = after


def test_a_fresh_key_is_a_fernet_key_and_the_file_round_trips(tmp_path: Path) -> None:
    """new_key() is what Keystone accepts; write() leaves a 0600 file parse() reads back."""
    keys = kk.rotate({0: kk.new_key(), 1: kk.new_key()}, 3)
    assert all(fernet_key(k) for k in keys.values())
    path = tmp_path / "keystone-fernet-keys"
    kk.write(path, keys)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert kk.parse(path.read_text()) == keys


A, B = "A" * 43 + "=", "Q" * 43 + "="  # two valid keys


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (f"1 {A}\n2 {B}", "staged key"),
        (f"0 {A}", "staged key"),
        (f"0 {A}\n0 {B}", "twice"),
        (f"x {A}", "INDEX"),
        ("0 a\n1 b", "not a Fernet key"),
    ],
)
def test_a_bad_repository_file_is_refused(text: str, why: str) -> None:
    """A file without a staged key and a primary, with a bad line or a key Keystone would not
    take, is named and refused (the minion's parser: hactl/wire/fernet.py)."""
    with pytest.raises(kk.KeyRepoError, match=why):
        kk.parse(text, "keys")


def test_max_active_below_three_is_refused() -> None:
    """Fewer than three keys cannot hold staged, primary and the previous primary."""
    with pytest.raises(ValueError, match="at least 3"):
        kk.rotate({0: "a", 1: "b"}, 2)
