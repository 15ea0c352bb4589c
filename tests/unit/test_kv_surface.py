"""hactl.bus.Kv maps nats-py's KV answers and errors to hactl's: a missing key is None, a lost
compare-and-set is KeyConflict, an empty bucket has no keys, anything else is a BusError with
the bucket and key in it, and a call that does not return in time is bounded."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import nats.errors
import nats.js.errors
import pytest

from hactl.bus import KeyConflict, Kv, KvEntry
from hactl.errors import BusError

pytestmark = pytest.mark.unit


class FakeKV:
    """nats-py's KeyValue as far as Kv calls it, raising what it is told to."""

    def __init__(self, raise_: BaseException | None = None, hang: bool = False) -> None:
        self.raise_, self.hang = raise_, hang

    async def _answer(self, value: Any) -> Any:
        if self.hang:
            await asyncio.sleep(10)
        if self.raise_ is not None:
            raise self.raise_
        return value

    async def get(self, key: str) -> Any:
        return await self._answer(SimpleNamespace(value=b"v", revision=7, operation=None))

    async def create(self, key: str, value: bytes) -> int:
        return int(await self._answer(1))

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        return int(await self._answer(8))

    async def keys(self) -> list[str]:
        return list(await self._answer(["a", "b"]))


def kv(fake: FakeKV) -> Kv:
    return Kv("nats://x", "B", fake)  # type: ignore[arg-type]  # the calls Kv makes


async def test_answers_become_typed_entries() -> None:
    """A value is a KvEntry with its revision; keys are a list."""
    assert await kv(FakeKV()).get("k") == KvEntry("k", b"v", 7)
    assert await kv(FakeKV()).keys() == ["a", "b"]
    assert await kv(FakeKV()).update("k", b"x", 7) == 8


async def test_errors_become_hactls() -> None:
    """Not found: None; no keys: []; wrong last sequence: KeyConflict; a connection error:
    BusError naming bucket and key; a hung call: BusError within its bound."""
    assert await kv(FakeKV(nats.js.errors.KeyNotFoundError())).get("k") is None
    assert await kv(FakeKV(nats.js.errors.NoKeysError())).keys() == []
    conflict = nats.js.errors.KeyWrongLastSequenceError(description="wrong last sequence")
    with pytest.raises(KeyConflict):
        await kv(FakeKV(conflict)).create("k", b"x")
    with pytest.raises(BusError, match="B/k"):
        await kv(FakeKV(nats.errors.ConnectionClosedError())).get("k")
    with pytest.raises(BusError, match="no answer"):
        await kv(FakeKV(hang=True)).get("k", timeout=0.05)
