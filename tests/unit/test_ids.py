"""Sortable unique ids."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from hactl.wire.ids import ID_LENGTH, encode_id, id_time, is_id, new_id


def test_ids_are_unique_and_strictly_increasing() -> None:
    """10,000 ids from one process are unique and already in sorted order."""
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == ID_LENGTH and is_id(i) for i in ids)


def test_id_encodes_its_creation_time() -> None:
    """The first 48 bits are the creation time in milliseconds."""
    before = time.time()
    ident = new_id()
    assert before - 0.002 <= id_time(ident) <= time.time() + 0.002


def test_id_ordering_follows_time() -> None:
    """An id from a later millisecond sorts after any id of an earlier one."""
    assert encode_id(1000, (1 << 80) - 1) < encode_id(1001, 0)


def test_is_id_rejects_other_shapes() -> None:
    """Lower-case, wrong length and forbidden letters (I, L, O, U) are not ids."""
    assert not is_id("0" * 25)
    assert not is_id("01M7Y8WRXH0JEWBTVH6AEPRR2I")
    assert not is_id("81M7Y8WRXH0JEWBTVH6AEPRR21")  # overflows 128 bits


@given(st.integers(0, (1 << 48) - 1), st.integers(0, (1 << 80) - 1))
def test_encode_id_matches_the_digit_by_digit_definition(ms: int, rand: int) -> None:
    """The fast base32 path equals the plain definition: 26 Crockford digits of ms<<80|rand."""
    value, digits = (ms << 80) | rand, []
    for _ in range(26):
        digits.append("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[value & 31])
        value >>= 5
    assert encode_id(ms, rand) == "".join(reversed(digits))


@given(st.integers(0, (1 << 48) - 2), st.integers(0, (1 << 79) - 3000), st.integers(1, 2500))
def test_generated_ids_equal_the_reference_encoding(ms: int, rand: int, count: int) -> None:
    """The generator's cached digits (per ms, per 1,024 increments) never differ from encode_id."""
    from hactl.wire.ids import _Generator

    gen = _Generator()
    gen._last_ms, gen._last_rand = ms, rand  # as if an id of this ms was just made
    last = ""
    for _ in range(count):
        ident = gen.next(ms)  # the same millisecond: increments, crossing 1,024 boundaries
        assert ident == encode_id(gen._last_ms, gen._last_rand)
        assert ident > last
        last = ident
    assert gen.next(ms + 1) == encode_id(ms + 1, gen._last_rand)  # a new ms: fresh digits
