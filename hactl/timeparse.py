"""Parse ``--since`` values: a duration ago (``90s``, ``10m``, ``1h30m``, ``2d``) or ISO 8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hactl.errors import UsageError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d|w))+\Z")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> float:
    """``"1h30m"`` -> 5400.0 seconds. Raises :class:`UsageError` on anything else."""
    cleaned = text.strip().lower()
    if not cleaned or not _DURATION.match(cleaned):
        raise UsageError(f"bad duration {text!r}: use e.g. 30s, 10m, 1h30m, 2d")
    return sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))


def parse_since(text: str, now: datetime) -> datetime:
    """A start time: ``now`` minus a duration, or an ISO 8601 instant (UTC when no offset)."""
    stripped = text.strip()
    if stripped and stripped[0].isdigit() and _DURATION.match(stripped.lower()):
        return now - timedelta(seconds=parse_duration(stripped))
    try:
        when = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"bad --since {text!r}: a duration (10m, 1h) or an ISO time (2026-11-21T05:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when > now:
        raise UsageError(f"--since {text!r} is in the future")
    return when
