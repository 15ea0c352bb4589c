"""A master's run on its data dir (master/incarnation.py) and the leader key it takes back."""

from __future__ import annotations

from pathlib import Path

from hactl.master.incarnation import Incarnation, claim
from hactl.master.reactor.leadership import LEADER_KEY, Leadership
from tests.support.memkv import MemKv


def test_the_lock_holder_records_its_value_and_its_successor_reads_it_back(
    tmp_path: Path,
) -> None:
    """The first run holds the lock and knows no predecessor; a second run beside it gets
    no lock and nothing to take back; the run after the first ended gets the first's value."""
    first = claim(tmp_path)
    try:
        assert first.held and first.incarnation.previous is None
        beside = claim(tmp_path)
        assert not beside.held and beside.incarnation.previous is None
        assert beside.incarnation.token != first.incarnation.token
    finally:
        first.release()
    after = claim(tmp_path)
    try:
        assert after.held and after.incarnation.previous == first.incarnation.token
        assert (tmp_path / "leader-token").stat().st_mode & 0o077 == 0
    finally:
        after.release()


def test_an_unwritable_data_dir_gives_a_fresh_run(tmp_path: Path) -> None:
    """A data dir that cannot be made (a file in its way): a value of its own, no lock."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    got = claim(blocker / "dir")
    assert not got.held and got.incarnation.previous is None


async def test_a_restarted_master_takes_back_its_own_key_at_once() -> None:
    """The key still holds the dead predecessor's value: taken back in one compare-and-set,
    without waiting for the bucket's TTL; a third master still waits for it."""
    locks = MemKv()
    dead = Leadership(locks, incarnation=Incarnation(b"master-aaaa"))
    assert await dead.lead()  # then killed: no resign, the key stays
    other = Leadership(locks, incarnation=Incarnation(b"master-cccc"))
    assert not await other.lead()
    again = Leadership(locks, incarnation=Incarnation(b"master-bbbb", previous=b"master-aaaa"))
    assert await again.lead()
    assert locks.data[LEADER_KEY][0] == b"master-bbbb"
    assert not await other.lead()


async def test_a_key_held_by_another_master_is_never_taken() -> None:
    """The key holds a living master's value, not the predecessor's: the restarted master
    waits like any other, and forgets the predecessor (it never takes a key later)."""
    locks = MemKv()
    living = Leadership(locks, incarnation=Incarnation(b"master-cccc"))
    assert await living.lead()
    again = Leadership(locks, incarnation=Incarnation(b"master-bbbb", previous=b"master-aaaa"))
    assert not await again.lead()
    assert again.previous is None
    assert locks.data[LEADER_KEY][0] == b"master-cccc"
