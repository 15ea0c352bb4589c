"""Sortable unique ids (ULID layout: 48-bit millisecond time + 80 random bits, Crockford base32).

Ids made by one process are strictly increasing, even within one millisecond (the random part is
incremented), so sorting ids sorts events by creation. Across processes they sort by millisecond.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1
ID_LENGTH = 26


def encode_id(ms: int, rand: int) -> str:
    """Encode a millisecond timestamp and an 80-bit random part as a 26-char id."""
    if not 0 <= ms < (1 << 48):
        raise ValueError("timestamp out of range")
    if not 0 <= rand <= _RANDOM_MAX:
        raise ValueError("random part out of range")
    value = (ms << _RANDOM_BITS) | rand  # 128 bits, as 26 base-32 digits (130 bits)
    # C speed: RFC 4648 base32 of 20 bytes is exactly 32 digits; keep the last 26, re-alphabet.
    return base64.b32encode(value.to_bytes(20, "big"))[6:].decode("ascii").translate(_TO_CROCKFORD)


def id_time(ident: str) -> float:
    """Epoch seconds encoded in an id (millisecond precision)."""
    value = 0
    for ch in ident.upper():
        value = (value << 5) | _ALPHABET.index(ch)
    return (value >> _RANDOM_BITS) / 1000.0


_ID_SHAPE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def is_id(text: str) -> bool:
    """True when ``text`` has the shape of an id made by :func:`new_id`."""
    return _ID_SHAPE.fullmatch(text) is not None


def _rand_digits(rand: int) -> str:
    """The last 16 digits: 80 bits are exactly 10 bytes, 16 base32 digits, no padding."""
    return base64.b32encode(rand.to_bytes(10, "big")).decode("ascii").translate(_TO_CROCKFORD)


_PAIRS = tuple(_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024))  # 10 bits, 2 digits


class _Generator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0
        self._prefix = ""  # the 10 time digits of _last_ms (ids of one ms share them)
        self._head = ""  # the first 24 digits of the last id, valid while rand >> 10 is _high
        self._high = -1

    def next(self, now_ms: int | None = None) -> str:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            if ms <= self._last_ms:
                # Same (or earlier: clock stepped back) millisecond: keep order by incrementing.
                ms = self._last_ms
                rand = self._last_rand + 1
                if rand > _RANDOM_MAX:  # 2**80 ids in one ms: move to the next ms
                    ms += 1
                    rand = int.from_bytes(os.urandom(10), "big") >> 1
            else:
                rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for increments
            if ms != self._last_ms or not self._prefix:
                self._prefix = encode_id(ms, 0)[:10]
                self._high = -1
            self._last_ms, self._last_rand = ms, rand
            # ids within one ms only increment: the last two digits change, the rest is reused
            if rand >> 10 != self._high:
                self._high = rand >> 10
                self._head = self._prefix + _rand_digits(rand)[:14]
            return self._head + _PAIRS[rand & 1023]


_GENERATOR = _Generator()


def new_id() -> str:
    """A new sortable unique id, strictly greater than the previous one from this process."""
    return _GENERATOR.next()
