"""One error root for everything hactl raises on purpose.

Every expected failure (a bad tag, an undecodable message, a server that is down) is a
``HactlError`` subclass carrying typed fields, so callers can branch on data rather than
on message text, and the CLI can print one line and exit 2 instead of a traceback.
"""

from __future__ import annotations

from enum import StrEnum


class HactlError(Exception):
    """Root of every error hactl raises deliberately."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TagError(HactlError):
    """A tag or tag glob is malformed."""

    def __init__(self, tag: str, reason: str) -> None:
        super().__init__(f"bad tag {tag!r}: {reason}")
        self.tag = tag
        self.reason = reason


class RejectReason(StrEnum):
    """Why an incoming message was refused by the wire layer (a counter label)."""

    MALFORMED = "malformed"  # not msgpack at all, or trailing bytes
    NOT_A_MAP = "not_a_map"
    UNKNOWN_VERSION = "unknown_version"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    BAD_TYPE = "bad_type"
    OVERSIZE = "oversize"
    BAD_TAG = "bad_tag"
    SUBJECT_MISMATCH = "subject_mismatch"  # the tag does not map to the subject it came on
    ORIGIN_MISMATCH = "origin_mismatch"  # `minion` is not the id the subject names
    UNTRUSTED = "untrusted"  # on a command subject, but not a master's or admin's request


class DecodeError(HactlError):
    """An incoming message was rejected; ``reason`` is a stable counter label."""

    def __init__(self, reason: RejectReason, detail: str, subject: str | None = None) -> None:
        where = f" on {subject}" if subject else ""
        super().__init__(f"rejected message{where}: {reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.subject = subject


class EncodeError(HactlError):
    """An outgoing event cannot be encoded (wrong types, too big)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"cannot encode event: {detail}")
        self.detail = detail


class BusError(HactlError):
    """The NATS bus is unreachable or refused an operation."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"NATS at {url}: {detail}")
        self.url = url
        self.detail = detail


class JetStreamBusy(BusError):
    """JetStream did not answer (no responders, a timeout, 503): a cluster still electing its
    leaders, a stream or bucket whose leader was just cut off. Transient: a starting master
    waits it out instead of exiting."""


class PermissionRefused(BusError):
    """nats-server refused an operation: this identity may not do it (hactl/auth/perms.py)."""

    def __init__(self, url: str, subject: str) -> None:
        super().__init__(url, f"permission denied: this identity may not publish to {subject}")
        self.subject = subject


class CommandError(HactlError):
    """A command sent to a minion (or the master) failed or got no answer."""

    def __init__(self, target: str, cmd: str, detail: str, *, kind: str = "failed") -> None:
        super().__init__(f"command {cmd} on {target} {kind}: {detail}")
        self.target = target
        self.cmd = cmd
        self.detail = detail
        self.kind = kind


class EmbeddedServerError(HactlError):
    """The embedded nats-server could not be started or stopped."""

    def __init__(self, detail: str, *, log_tail: str = "") -> None:
        msg = f"embedded nats-server: {detail}"
        if log_tail:
            msg += f" (server said: {log_tail})"
        super().__init__(msg)
        self.detail = detail
        self.log_tail = log_tail


class ConfigError(HactlError):
    """A configuration value or file is invalid; names the file and line when known."""

    def __init__(self, detail: str, *, file: str | None = None, line: int | None = None) -> None:
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        super().__init__(f"{where}{detail}")
        self.detail = detail
        self.file = file
        self.line = line


class UsageError(HactlError):
    """A command-line argument is invalid."""


class StateError(ConfigError):
    """The state tree is invalid: names the file, the line and the state or resource id."""

    def __init__(
        self, detail: str, *, file: str | None = None, line: int | None = None, state: str = ""
    ) -> None:
        super().__init__(f"{state}: {detail}" if state else detail, file=file, line=line)
        self.state = state


class MinionFailed(HactlError):
    """A minion task that must run forever ended; the daemon exits so it is restarted."""

    exit_code = 1

    def __init__(self, minion: str, tasks: list[str]) -> None:
        super().__init__(f"minion {minion}: task(s) {', '.join(tasks)} died (see the log)")
        self.minion = minion
        self.tasks = tasks
