"""Maintenance windows in KV ``HACTL_MAINT`` (pure functions): planned work hactl leaves alone.

A record says that a node (or every node: ``all``), or one component of it, is under
maintenance: who set it (the public key the server authenticated), why, since and until when.
Keys are ``maint.<node>.<component>`` (``all`` for every node or every component), so a minion
can read exactly its own records (its one extra direct-get grant: hactl/auth/perms.py) and a
master reads them all. An expired record is off; nothing has to delete it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from hactl.errors import DecodeError, RejectReason, TagError
from hactl.schema import Field
from hactl.wire.records import NUMBER, json_record
from hactl.wire.tags import validate_id

PREFIX: Final = "maint"
ALL: Final = "all"
#: the components maintenance can name (beacon kinds and supervised services map onto them)
COMPONENTS: Final = ("all", "galera", "rabbitmq", "haproxy", "keepalived", "api", "minion")
#: which component an event about a node concerns (by its beacon kind or event kind)
BEACON_COMPONENT: Final = {
    "galera": "galera",
    "rabbitmq": "rabbitmq",
    "haproxy": "haproxy",
    "vrrp": "keepalived",
    "service": "api",
    "supervisor": "all",
    "singleton": "api",
    "minion": "all",
}
MAX_REASON = 500
_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,500}")


@dataclass(frozen=True, slots=True)
class Maintenance:
    """One maintenance window."""

    node: str  # a node id, or ``all``
    component: str  # one of COMPONENTS
    reason: str
    by: str = ""  # the public key of the person who set it
    since: float = 0.0
    until: float | None = None  # None: until turned off

    def key(self) -> str:
        """Its KV key."""
        return maint_key(self.node, self.component)

    def active(self, now: float | None = None) -> bool:
        """Not expired."""
        return self.until is None or (now if now is not None else time.time()) < self.until

    def covers(self, node: str, component: str) -> bool:
        """Whether this window covers ``component`` of ``node``."""
        return self.node in (ALL, node) and self.component in (ALL, component)


def maint_key(node: str, component: str) -> str:
    """``maint.<node>.<component>``; both checked."""
    if node != ALL:
        try:
            validate_id(node)
        except TagError as exc:
            raise DecodeError(RejectReason.BAD_TAG, f"maintenance node: {exc.reason}") from None
    if component not in COMPONENTS:
        raise DecodeError(
            RejectReason.BAD_TYPE,
            f"maintenance component must be one of {', '.join(COMPONENTS)}, got {component!r}",
        )
    return f"{PREFIX}.{node}.{component}"


def encode(record: Maintenance) -> bytes:
    """JSON (readable with ``nats kv get``)."""
    return json.dumps(
        {
            "node": record.node,
            "component": record.component,
            "reason": record.reason,
            "by": record.by,
            "since": record.since,
            "until": record.until,
        },
        sort_keys=True,
    ).encode()


_RECORD = (
    Field("node", (str,)),
    Field("component", (str,)),
    Field("reason", (str,)),
    Field("by", (str,)),
    Field("since", NUMBER),
    Field("until", NUMBER, required=False),
)


def decode(data: bytes) -> Maintenance:
    """Strictly: anything else is a :class:`DecodeError`."""
    raw = json_record(data, "maintenance record", _RECORD, 2048, exact=True)
    node, component, reason = raw["node"], raw["component"], raw["reason"]
    maint_key(node, component)  # validates both
    if not _TEXT.fullmatch(reason):
        raise DecodeError(RejectReason.BAD_TYPE, "maintenance reason: 1-500 printable characters")
    until = raw["until"]
    return Maintenance(
        node,
        component,
        reason,
        raw["by"],
        float(raw["since"]),
        None if until is None else float(until),
    )


def covering(
    records: Iterable[Maintenance], node: str, component: str, now: float | None = None
) -> Maintenance | None:
    """The first active window covering ``component`` of ``node``, or None."""
    return next((r for r in records if r.active(now) and r.covers(node, component)), None)


def parse_records(values: Mapping[str, bytes]) -> tuple[list[Maintenance], list[str]]:
    """(records, problems) from a bucket's key -> value map; a bad value is a problem."""
    out, problems = [], []
    for key, data in sorted(values.items()):
        try:
            record = decode(data)
        except DecodeError as exc:
            problems.append(f"{key}: {exc.detail}")
            continue
        if record.key() != key:
            problems.append(f"{key}: holds {record.key()}")
            continue
        out.append(record)
    return out, problems


def as_dict(record: Maintenance) -> dict[str, Any]:
    """For ``--json`` and audit records."""
    return {
        "node": record.node,
        "component": record.component,
        "reason": record.reason,
        "by": record.by,
        "since": record.since,
        "until": record.until,
    }
