"""--since and duration parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hactl.errors import UsageError
from hactl.timeparse import parse_duration, parse_since

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("250ms", 0.25), ("1w", 604800)],
)
def test_durations(text: str, seconds: float) -> None:
    """Compound durations add up."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "10 minutes", "-5m", "1y"])
def test_bad_durations(text: str) -> None:
    """Anything but <number><unit>... is a usage error."""
    with pytest.raises(UsageError):
        parse_duration(text)


def test_since_duration_and_iso() -> None:
    """--since takes a duration ago or an ISO time; naive times are UTC."""
    assert parse_since("10m", NOW) == NOW - timedelta(minutes=10)
    assert parse_since("2026-11-21T11:00:00Z", NOW) == NOW - timedelta(hours=1)
    assert parse_since("2026-11-21T11:00:00", NOW) == NOW - timedelta(hours=1)
    assert parse_since("2026-11-21T12:00:00+01:00", NOW) == NOW - timedelta(hours=1)


@pytest.mark.parametrize("text", ["yesterday", "2027-01-01T00:00:00Z"])
def test_bad_since(text: str) -> None:
    """Unparseable and future --since values are refused."""
    with pytest.raises(UsageError):
        parse_since(text, NOW)
