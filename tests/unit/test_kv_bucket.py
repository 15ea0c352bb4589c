"""Creating a replicated KV bucket while the NATS cluster is still forming is retried, not
fatal (CI 2026-12-01: a lab master exited on "no suitable peers for placement")."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import nats.js.errors
import pytest

from hactl.bus.jetstream import kv_bucket
from hactl.errors import BusError

pytestmark = pytest.mark.unit


class FormingJs:
    """A JetStream context whose cluster answers "no suitable peers" ``n`` times."""

    def __init__(self, n: int, description: str = "no suitable peers for placement") -> None:
        self.n, self.description, self.calls = n, description, 0

    async def key_value(self, bucket: str) -> Any:
        raise nats.js.errors.BucketNotFoundError

    async def create_key_value(self, config: Any) -> Any:
        self.calls += 1
        if self.calls <= self.n:
            raise nats.js.errors.APIError(description=self.description)
        return "bucket"


async def test_a_forming_cluster_is_waited_for() -> None:
    """Two "no suitable peers" answers, then the bucket."""
    js = FormingJs(2)
    bus = SimpleNamespace(js=js, url="nats://x")
    assert (await kv_bucket(bus, "B", replicas=3)).bucket == "B"  # type: ignore[arg-type]  # js and url are all it uses
    assert js.calls == 3


async def test_another_refusal_is_an_error_at_once() -> None:
    """A refusal that is not about peers still fails at once, with JetStream's words."""
    js = FormingJs(1, "insufficient permissions")
    bus = SimpleNamespace(js=js, url="nats://x")
    with pytest.raises(BusError, match="insufficient permissions"):
        await kv_bucket(bus, "B", replicas=3)  # type: ignore[arg-type]  # as above
    assert js.calls == 1
