"""The wire version window: what this build writes, and what it reads.

Masters and minions are upgraded one host at a time, so for a while a site runs two adjacent
builds. Each message (event or command) carries ``v``, the version its writer speaks. This
build writes :data:`WRITES` and reads :data:`READS` -- its own version, the one before it (a
peer not yet upgraded) and the next one (a peer upgraded first). A newer version may only add
optional fields, which this build ignores; a field this build does not know in a message of
its own version or older is refused (nothing legitimate writes one). Anything outside the
window is refused with one line naming both versions.

Changing the format in a way an adjacent build cannot read takes two releases: the first
reads the new form, the second writes it (docs/decisions.md 48).
"""

from __future__ import annotations

from hactl.errors import DecodeError, RejectReason

#: the version this build writes
WRITES = 1
#: the versions this build reads (inclusive): the one before, its own, the next
READS = (WRITES - 1 if WRITES > 1 else WRITES, WRITES + 1)


def check(version: object, subject: str | None = None) -> bool:
    """Raise :class:`DecodeError` unless ``version`` is in the window; True when it is newer
    than this build (its unknown fields are then ignored, not refused)."""
    if not isinstance(version, int) or isinstance(version, bool):
        raise DecodeError(RejectReason.BAD_TYPE, "v must be an integer", subject)
    low, high = READS
    if not low <= version <= high:
        raise DecodeError(
            RejectReason.UNKNOWN_VERSION,
            f"wire version {version}: this build reads {low}-{high} and writes {WRITES} "
            "(upgrade hosts one version at a time)",
            subject,
        )
    return version > WRITES
