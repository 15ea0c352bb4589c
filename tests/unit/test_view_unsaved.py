"""A view value KV would not take is written again, with what the view holds then."""

from __future__ import annotations

from typing import Any

from hactl.errors import BusError
from hactl.master.reactor.runtime import ReactorOptions, ReactorRuntime


class FlakyStore:
    """A view store that refuses writes while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.puts: list[tuple[str, str, Any]] = []

    async def put(self, node: str, aspect: str, value: Any, at: float | None = None) -> None:
        """Refused while down, recorded otherwise."""
        if self.down:
            raise BusError("nats://test", "nats: connection closed")
        self.puts.append((node, aspect, value))


async def test_a_refused_write_is_retried_with_the_latest_value() -> None:
    """Two writes refused (one key twice): nothing is lost -- once KV takes writes again, one
    retry pass stores each key once, with the value the view holds now; a key the view no
    longer has is dropped; nothing is left to retry."""
    runtime = ReactorRuntime(bus=None, options=ReactorOptions())  # type: ignore[arg-type]  # the store is all it touches here
    store = FlakyStore()
    runtime.store = store  # type: ignore[assignment]  # the store's put is the contract
    runtime.view.nodes = {"ctl1": {"vrrp": {"v": 1}}, "ctl2": {"galera": {"g": 1}}}
    await runtime._persist("ctl1", "vrrp", {"v": 1})
    runtime.view.nodes["ctl1"]["vrrp"] = {"v": 2}
    await runtime._persist("ctl1", "vrrp", {"v": 2})
    await runtime._persist("ctl2", "galera", {"g": 1})
    await runtime._persist("ctl3", "haproxy", {"h": 1})  # gone from the view before the retry
    assert runtime._unsaved == {("ctl1", "vrrp"), ("ctl2", "galera"), ("ctl3", "haproxy")}
    await runtime._save_unsaved(every=0)  # still down: kept
    assert len(runtime._unsaved) == 3 and store.puts == []
    store.down = False
    await runtime._save_unsaved(every=0)
    assert store.puts == [("ctl1", "vrrp", {"v": 2}), ("ctl2", "galera", {"g": 1})]
    assert runtime._unsaved == set()
