"""What each beacon's items may hold: the contract between the minion's beacons and the
master's view (pure, no I/O).

A beacon event's ``data.items`` maps an item name to a flat record. Every field a beacon sends
is listed here with its types; an unknown field, a wrong type, too many items, an over-long
name or string, or a nested value is refused with a reason (:func:`check_items`). The master's
view applies it to events and to values read back from KV, so one malformed event can neither
poison the derived facts nor come back after a restart; a unit test runs every beacon's real
output through it, so the contract and the beacons cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

#: the command that asks a minion for a full report of every beacon now (no arguments): a
#: master that starts asks each node it knows, so no decision rests on the view it read back
#: from KV for longer than a poll (the reports with no change come every ``resync_interval``
#: otherwise: 30 s)
RESYNC: Final = "beacon.resync"

#: a list of strings (VIPs, RabbitMQ members, ...)
STRS: Final = "list[str]"
_S, _I, _B, _NONE = (str,), (int,), (bool,), (type(None),)
_NUM = (int, float)

Spec = tuple[Any, ...]

ITEM_FIELDS: Final[dict[str, dict[str, Spec]]] = {
    "vrrp": {
        "state": _S,
        "priority": _I + _NONE,
        "since": _NUM + _NONE,
        "vips": (STRS,),
        "vip_here": _B,
        "agreement": _S,
        "yielded": _B,  # the minion holds a vrrp.yield on it (hactl/wire/vrrp.py)
    },
    "haproxy": {
        "backend": _S,
        "server": _S,
        "status": _S,
        "raw_status": _S,
        "admin": _S + _NONE,  # maint / drain / ready / disabled (show servers state)
        "weight": _I + _NONE,
        "total_weight": _I + _NONE,
        "scur": _I,
        "check_status": _S,
        "active": _B,
        "backup": _B,
        "chkfail": _I + _NONE,
        "lastchg": _I + _NONE,
        "addr": _S,
    },
    "galera": {
        "running": _B,
        "cluster_status": _S,
        "local_state": _I + _NONE,
        "local_state_comment": _S,
        "cluster_size": _I,
        "cluster_state_uuid": _S,
        "last_committed": _I + _NONE,
        "ready": _B,
        "connected": _B,
        "synced": _B,
        "detail": _S,
        "uuid": _S + _NONE,
        "seqno": _I + _NONE,
        "safe_to_bootstrap": _B + _NONE,
        "grastate": _B,
        "datadir_free": _I + _NONE,
        "disk_full": _B,
    },
    "rabbitmq": {
        "node": _S,
        "running": _B,
        "detail": _S,
        "api": _B,
        "api_detail": _S,
        "members": (STRS, type(None)),
        "running_members": (STRS, type(None)),
        "partitions": (STRS, type(None)),
        "alarms": (STRS, type(None)),
        "local_alarms": (STRS, type(None)),  # this broker's own, read when asked
        "local_listed": _B,
        "down_since": _NUM + _NONE,
        "partitioned_since": _NUM + _NONE,  # its own partition list non-empty since
        "process": _B,  # its Erlang VM alive (with the beacon's pidfile option)
        "service": _S,  # the minion's service that runs it
        "reachable": _B + _NONE,  # paused: a majority of its cluster answers at its epmd
        "stuck": _B + _NONE,  # paused though reachable for over the beacon's resume_grace
    },
    "service": {"url": _S, "up": _B, "detail": _S},
    # minion/supervisor.py: one item per supervised service
    "supervisor": {
        "running": _B,
        "deaths": _I,
        "restarts": _I,
        "given_up": _B,
        "last_error": _S,
        "suspended": _S,  # planned work holds it: its name ('' when supervised)
    },
    # minion/singleton.py: one item per singleton of the node
    "singleton": {
        "holding": _B,
        "token": _I,
        "running": _B,
        "failures": _I,
        "lease_left": _NUM,
        "last": _S,
    },
}

#: a beacon's own status entries (names start with ``_``)
STATUS_FIELDS: Final[dict[str, dict[str, Spec]]] = {
    "_beacon": {"error": _S},
    "_keepalived": {"error": _S},
    "_haproxy": {"running": _B, "error": _S},
}

MAX_ITEMS: Final = 4096  # per event (a large HAProxy: ~100 backends x 4 servers + totals)
MAX_NAME: Final = 256
MAX_STRING: Final = 4096
MAX_LIST: Final = 256


def _type_ok(value: Any, spec: Spec) -> bool:
    for t in spec:
        if t == STRS:
            if (
                isinstance(value, list)
                and len(value) <= MAX_LIST
                and all(isinstance(v, str) and len(v) <= MAX_NAME for v in value)
            ):
                return True
        elif isinstance(value, bool):
            if t is bool:
                return True
        elif isinstance(value, t):
            return not isinstance(value, str) or len(value) <= MAX_STRING
    return False


def _spec_name(spec: Spec) -> str:
    return " or ".join(
        "null" if t is type(None) else str(t) if t == STRS else t.__name__ for t in spec
    )


def check_items(kind: str, items: Any) -> str:
    """Why ``items`` is not a valid snapshot of beacon ``kind`` ('' when it is)."""
    fields = ITEM_FIELDS.get(kind)
    if fields is None:
        return f"{kind}: not a beacon"
    if not isinstance(items, Mapping):
        return f"{kind}: items are not a map"
    if len(items) > MAX_ITEMS:
        return f"{kind}: {len(items)} items (at most {MAX_ITEMS})"
    for name, item in items.items():
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            return f"{kind}: an item name must be a string of 1-{MAX_NAME} characters"
        spec = STATUS_FIELDS.get(name) if name.startswith("_") else fields
        if spec is None:
            return f"{kind}.{name[:40]}: unknown status entry"
        if not isinstance(item, Mapping):
            return f"{kind}.{name[:40]}: not a map"
        for key, value in item.items():
            want = spec.get(key) if isinstance(key, str) else None
            if want is None:
                return f"{kind}.{name[:40]}: unknown field {str(key)[:40]!r}"
            if not _type_ok(value, want):
                return f"{kind}.{name[:40]}.{key}: must be {_spec_name(want)}"
    return ""
