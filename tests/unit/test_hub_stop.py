"""A master's stop runs every step, whatever the one before it did."""

from __future__ import annotations

from typing import Any

from hactl.bus import StreamSettings
from hactl.master.hub import Hub


class Step:
    """A stop step that records its call (and fails if told to)."""

    def __init__(self, calls: list[str], name: str, fail: bool = False) -> None:
        self.calls, self.name, self.fail = calls, name, fail

    async def stop(self) -> None:
        """Record; raise if this step is the broken one."""
        self.calls.append(self.name)
        if self.fail:
            raise RuntimeError(f"{self.name} broke")


async def test_a_failing_step_does_not_skip_the_reactors_stop() -> None:
    """The job quota's stop raises, the notifier's too: the reactor still stops (so the bus
    never closes under its live consumer), before the notifier, and run_forever returns."""
    calls: list[str] = []
    hub = Hub(bus=None, stream=StreamSettings())  # type: ignore[arg-type]  # no step reaches the bus
    hub.quota = Step(calls, "quota", fail=True)  # type: ignore[assignment]  # the stop is all it needs
    hub.reactor = Step(calls, "reactor")  # type: ignore[assignment]  # as above
    notifier: Any = Step(calls, "notifier", fail=True)
    hub.notifier = notifier
    hub.stop()
    await hub.run_forever()
    assert calls == ["quota", "reactor", "notifier"]
