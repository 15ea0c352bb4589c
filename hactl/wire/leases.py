"""Lease records in KV ``HACTL_LEASES`` that a minion must be able to check (pure functions).

A Galera bootstrap is the one command that can lose transactions or split the cluster if it
runs on the wrong node, so the minion does not take the master's word for it: the master's
planner first creates the lease ``galera-bootstrap.<uuid>.<seqno>`` (create-once: one
bootstrap per epoch) holding this record, and the minion reads it back (a read-only direct get,
the only JetStream call a minion may make: hactl/auth/perms.py) and bootstraps only when it
exists, is not deleted and names this node and this position.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from hactl.errors import DecodeError, RejectReason, TagError
from hactl.schema import Field
from hactl.wire.records import NUMBER, json_record
from hactl.wire.tags import validate_id

BOOTSTRAP_PREFIX = "galera-bootstrap"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
MAX_LEASE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class BootstrapLease:
    """Who may bootstrap the epoch ``uuid:seqno``, granted by which master at what time."""

    node: str
    uuid: str
    seqno: int
    granted_by: str = ""
    granted_at: float = 0.0


def bootstrap_key(uuid: str, seqno: int) -> str:
    """The KV key of the epoch's bootstrap lease."""
    return f"{BOOTSTRAP_PREFIX}.{uuid}.{seqno}"


def encode_bootstrap(lease: BootstrapLease) -> bytes:
    """JSON, so ``nats kv get HACTL_LEASES ...`` is readable by an operator."""
    return json.dumps(
        {
            "node": lease.node,
            "uuid": lease.uuid,
            "seqno": lease.seqno,
            "granted_by": lease.granted_by,
            "granted_at": lease.granted_at,
        },
        sort_keys=True,
    ).encode()


_BOOTSTRAP = (
    Field("node", (str,)),
    Field("uuid", (str,)),
    Field("seqno", (int,), between=(-1, 2**63)),
    Field("granted_by", (str,), required=False, default=""),
    Field("granted_at", NUMBER, required=False, default=0.0),
)


def decode_bootstrap(data: bytes) -> BootstrapLease:
    """The record, strictly: anything else is a :class:`DecodeError` with a reason."""
    raw = json_record(data, "lease record", _BOOTSTRAP, MAX_LEASE_BYTES)
    node, uuid = raw["node"], raw["uuid"]
    try:
        validate_id(node)
    except TagError:
        raise DecodeError(RejectReason.BAD_TYPE, "lease record: node") from None
    if not _UUID.match(uuid):
        raise DecodeError(RejectReason.BAD_TYPE, "lease record: uuid")
    return BootstrapLease(node, uuid, raw["seqno"], raw["granted_by"], float(raw["granted_at"]))
