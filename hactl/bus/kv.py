"""JetStream KV behind hactl's own surface: typed entries, bounded calls, hactl's errors.

Every KV call outside ``hactl/bus`` goes through :class:`Kv` (or anything shaped like
:class:`KvStore`, such as the tests' in-memory bucket), so nats-py's exceptions stop here:

- a key that is absent, deleted or purged reads as ``None``;
- a compare-and-set that lost (``create`` on a live key, ``update`` on a stale revision) is a
  :class:`KeyConflict`;
- anything else -- no answer within the call's bound, a server reconnecting, JetStream
  electing a leader -- is a :class:`~hactl.errors.BusError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import nats.errors
import nats.js.errors

from hactl.errors import BusError

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

_DELETED = ("DEL", "PURGE")
#: one KV call's bound unless the caller gives its own: JetStream answers in milliseconds
#: when it can; a call still waiting after this is not going to be answered usefully
KV_TIMEOUT = 5.0
_MISSING = object()  # get()'s "not found" marker inside _call


class KeyConflict(BusError):
    """A compare-and-set lost: the key exists (create) or moved on (update, delete)."""

    def __init__(self, url: str, bucket: str, key: str) -> None:
        super().__init__(url, f"{bucket}/{key} changed meanwhile")
        self.bucket = bucket
        self.key = key


class NoBucket(BusError):
    """The KV bucket does not exist (masters create them; readers and writers bind)."""

    def __init__(self, url: str, bucket: str) -> None:
        super().__init__(url, f"no KV bucket {bucket}")
        self.bucket = bucket


@dataclass(frozen=True, slots=True)
class KvEntry:
    """One key's value at one revision; ``deleted`` for a delete or purge marker (watch)."""

    key: str
    value: bytes
    revision: int
    deleted: bool = False


class KvStore(Protocol):
    """What hactl needs of a KV bucket (:class:`Kv` over NATS; an in-memory one in tests)."""

    async def get(self, key: str, timeout: float = KV_TIMEOUT) -> KvEntry | None: ...
    async def put(self, key: str, value: bytes, timeout: float = KV_TIMEOUT) -> int: ...
    async def create(self, key: str, value: bytes, timeout: float = KV_TIMEOUT) -> int: ...
    async def update(
        self, key: str, value: bytes, last: int, timeout: float = KV_TIMEOUT
    ) -> int: ...
    async def delete(
        self, key: str, last: int | None = None, timeout: float = KV_TIMEOUT
    ) -> None: ...
    async def keys(self, timeout: float = KV_TIMEOUT) -> list[str]: ...


class Kv:
    """One bound KV bucket (:func:`hactl.bus.kv_bucket` creates, :meth:`Bus.kv` binds)."""

    def __init__(self, url: str, bucket: str, kv: KeyValue) -> None:
        self.url = url
        self.bucket = bucket
        self._kv = kv

    async def _call(
        self, op: Awaitable[Any], key: str, what: str, timeout: float, *, absent: Any = None
    ) -> Any:
        """``op`` bounded by ``timeout``, nats-py's errors mapped to hactl's; a missing key
        (or an empty bucket's key list) answers ``absent`` when one is given."""
        try:
            return await asyncio.wait_for(op, timeout)
        except (nats.js.errors.NotFoundError, nats.js.errors.NoKeysError):
            if absent is None:
                raise BusError(self.url, f"cannot {what} {self.bucket}/{key} (not found)") from None
            return absent
        except nats.js.errors.KeyWrongLastSequenceError:
            raise KeyConflict(self.url, self.bucket, key) from None
        except TimeoutError:
            raise BusError(
                self.url, f"no answer to {what} {self.bucket}/{key} within {timeout:g} s"
            ) from None
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            why = str(exc) or type(exc).__name__
            if "wrong last sequence" in why.lower():  # answered as a plain API error
                raise KeyConflict(self.url, self.bucket, key) from None
            raise BusError(self.url, f"cannot {what} {self.bucket}/{key} ({why})") from None

    async def get(self, key: str, timeout: float = KV_TIMEOUT) -> KvEntry | None:
        """The live value, or None when the key is absent, deleted or purged."""
        entry = await self._call(self._kv.get(key), key, "read", timeout, absent=_MISSING)
        return None if entry is _MISSING else _entry(key, entry)

    async def put(self, key: str, value: bytes, timeout: float = KV_TIMEOUT) -> int:
        """Write whatever is there; the new revision."""
        return int(await self._call(self._kv.put(key, value), key, "write", timeout))

    async def create(self, key: str, value: bytes, timeout: float = KV_TIMEOUT) -> int:
        """Write only if the key is not live (:class:`KeyConflict` otherwise)."""
        return int(await self._call(self._kv.create(key, value), key, "create", timeout))

    async def update(self, key: str, value: bytes, last: int, timeout: float = KV_TIMEOUT) -> int:
        """Write only over revision ``last`` (:class:`KeyConflict` otherwise)."""
        return int(await self._call(self._kv.update(key, value, last=last), key, "update", timeout))

    async def delete(self, key: str, last: int | None = None, timeout: float = KV_TIMEOUT) -> None:
        """A delete marker (only over revision ``last`` when given)."""
        await self._call(self._kv.delete(key, last=last), key, "delete", timeout)

    async def keys(self, timeout: float = KV_TIMEOUT) -> list[str]:
        """Every live key ([] for an empty bucket)."""
        return list(await self._call(self._kv.keys(), "*", "list", timeout, absent=[]))

    async def watch(self) -> AsyncIterator[KvEntry]:
        """The current values, then every change (deletes as ``deleted`` entries)."""
        try:
            watcher = await self._kv.watchall(include_history=False)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            raise BusError(self.url, f"cannot watch {self.bucket} ({exc})") from None
        async for entry in watcher:
            if entry is None or not entry.key:
                continue  # the end of the current values
            deleted = entry.operation in _DELETED or not entry.value
            value = b"" if deleted else bytes(entry.value or b"")
            yield KvEntry(entry.key, value, int(entry.revision or 0), deleted)


def _entry(key: str, entry: object) -> KvEntry | None:
    value = getattr(entry, "value", None)
    if entry is None or not value or getattr(entry, "operation", None) in _DELETED:
        return None
    return KvEntry(key, bytes(value), int(getattr(entry, "revision", 0) or 0))
