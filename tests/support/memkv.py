"""An in-memory KV bucket with the contract of hactl.bus.Kv (compare-and-set on revisions,
None for a missing key, KeyConflict, BusError when 'broken'), for unit tests of the code that
leads, leases and asks over KV."""

from __future__ import annotations

from hactl.bus import KeyConflict, KvEntry
from hactl.bus.kv import KV_TIMEOUT
from hactl.errors import BusError

URL = "mem://kv"


class MemKv:
    """``data`` maps key -> (value, revision); ``broken``: JetStream away (every call a
    BusError); ``lose_ack``: a write lands but its answer never comes (a BusError)."""

    def __init__(self, bucket: str = "MEM") -> None:
        self.bucket = bucket
        self.data: dict[str, tuple[bytes, int]] = {}
        self.seq = 0
        self.broken = False
        self.lose_ack = False

    def _away(self, key: str) -> None:
        if self.broken:
            raise BusError(URL, f"no answer for {self.bucket}/{key}")

    def _write(self, key: str, value: bytes) -> int:
        self.seq += 1
        self.data[key] = (value, self.seq)
        if self.lose_ack:
            raise BusError(URL, f"no answer to write {self.bucket}/{key}")
        return self.seq

    async def get(self, key: str, timeout: float = KV_TIMEOUT) -> KvEntry | None:
        self._away(key)
        if key not in self.data:
            return None
        value, rev = self.data[key]
        return KvEntry(key, value, rev)

    async def put(self, key: str, value: bytes, timeout: float = KV_TIMEOUT) -> int:
        self._away(key)
        return self._write(key, value)

    async def create(self, key: str, value: bytes, timeout: float = KV_TIMEOUT) -> int:
        self._away(key)
        if key in self.data:
            raise KeyConflict(URL, self.bucket, key)
        return self._write(key, value)

    async def update(self, key: str, value: bytes, last: int, timeout: float = KV_TIMEOUT) -> int:
        self._away(key)
        if key not in self.data or self.data[key][1] != last:
            raise KeyConflict(URL, self.bucket, key)
        return self._write(key, value)

    async def delete(self, key: str, last: int | None = None, timeout: float = KV_TIMEOUT) -> None:
        self._away(key)
        if last is not None and (key not in self.data or self.data[key][1] != last):
            raise KeyConflict(URL, self.bucket, key)
        self.data.pop(key, None)

    async def keys(self, timeout: float = KV_TIMEOUT) -> list[str]:
        self._away("*")
        return list(self.data)
