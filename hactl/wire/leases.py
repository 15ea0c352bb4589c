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


def decode_bootstrap(data: bytes) -> BootstrapLease:
    """The record, strictly: anything else is a :class:`DecodeError` with a reason."""
    if len(data) > MAX_LEASE_BYTES:
        raise DecodeError(RejectReason.OVERSIZE, f"lease record of {len(data)} bytes")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise DecodeError(RejectReason.MALFORMED, "lease record is not JSON") from None
    if not isinstance(raw, dict):
        raise DecodeError(RejectReason.NOT_A_MAP, "lease record is not an object")
    if unknown := sorted(set(raw) - {"node", "uuid", "seqno", "granted_by", "granted_at"}):
        raise DecodeError(RejectReason.UNKNOWN_FIELD, f"lease record field(s) {unknown}")
    node, uuid, seqno = raw.get("node"), raw.get("uuid"), raw.get("seqno")
    try:
        validate_id(node if isinstance(node, str) else "")
    except TagError:
        raise DecodeError(RejectReason.BAD_TYPE, "lease record: node") from None
    if not (isinstance(uuid, str) and _UUID.match(uuid)):
        raise DecodeError(RejectReason.BAD_TYPE, "lease record: uuid")
    if not (isinstance(seqno, int) and not isinstance(seqno, bool) and seqno >= -1):
        raise DecodeError(RejectReason.BAD_TYPE, "lease record: seqno")
    by, at = raw.get("granted_by", ""), raw.get("granted_at", 0.0)
    if not isinstance(by, str) or not isinstance(at, int | float) or isinstance(at, bool):
        raise DecodeError(RejectReason.BAD_TYPE, "lease record: granted_by/granted_at")
    return BootstrapLease(str(node), uuid, seqno, by, float(at))
