"""Counting and logging rejected messages without letting a flood flood the log."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hactl.errors import DecodeError
from hactl.log import get_logger

log = get_logger("hactl.bus")


@dataclass
class RejectStats:
    """Per-reason reject counters, plus a log rate limit (``burst`` lines per ``window`` s)."""

    burst: int = 20
    window: float = 10.0
    counts: Counter[str] = field(default_factory=Counter)
    handler_errors: int = 0
    _window_start: float = 0.0
    _logged_in_window: int = 0
    _suppressed: int = 0

    def count(self, exc: DecodeError) -> None:
        """Count ``exc`` without a log line: a stored message read back again (history), which
        was logged when it arrived live."""
        self.counts[exc.reason.value] += 1

    def reject(self, exc: DecodeError, subject: str) -> None:
        """Count ``exc`` and log it (rate-limited; suppressed lines are summarized)."""
        self.counts[exc.reason.value] += 1
        now = time.monotonic()
        if now - self._window_start > self.window:
            if self._suppressed:
                log.warning("rejects_suppressed", count=self._suppressed, window_s=self.window)
            self._window_start, self._logged_in_window, self._suppressed = now, 0, 0
        if self._logged_in_window < self.burst:
            self._logged_in_window += 1
            log.warning(
                "message_rejected",
                reason=exc.reason.value,
                subject=subject,
                detail=exc.detail,
                total=self.counts[exc.reason.value],
            )
        else:
            self._suppressed += 1

    def as_dict(self) -> dict[str, Any]:
        """Counters for a stats reply."""
        return {
            "rejected": dict(self.counts),
            "rejected_total": sum(self.counts.values()),
            "handler_errors": self.handler_errors,
        }
