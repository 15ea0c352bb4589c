"""The one strict decoder of the JSON records hactl keeps in KV (maintenance windows,
bootstrap leases, approvals, singleton leases and specs).

Each is JSON so that ``nats kv get`` is readable by a person, and each is read back as
untrusted input: too large, not JSON, not an object, a field it does not have, a missing
field (``exact``) or a value of the wrong type is a :class:`~hactl.errors.DecodeError` whose
reason is a stable counter label. The fields are declared with the project's one schema
mechanism (:mod:`hactl.schema`); a record's own rules beyond types (an id's shape, a text's
characters) stay beside its type.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hactl.errors import DecodeError, RejectReason
from hactl.schema import Field, SchemaError, check

NUMBER = (int, float)  # a time or a size (a boolean is refused: Field.problem)


def json_map(data: bytes, what: str, max_bytes: int) -> dict[str, Any]:
    """``data`` as a JSON object of at most ``max_bytes``; DecodeError otherwise."""
    if len(data) > max_bytes:
        raise DecodeError(RejectReason.OVERSIZE, f"{what} of {len(data)} bytes")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise DecodeError(RejectReason.MALFORMED, f"{what} is not JSON") from None
    if not isinstance(raw, dict):
        raise DecodeError(RejectReason.NOT_A_MAP, f"{what} is not an object")
    return raw


def json_record(
    data: bytes, what: str, fields: Sequence[Field], max_bytes: int, *, exact: bool = False
) -> dict[str, Any]:
    """The checked fields of the record in ``data`` (defaults filled in); ``exact``: every
    field must be present, as the writer always writes them all."""
    raw = json_map(data, what, max_bytes)
    names = {f.name for f in fields}
    if unknown := sorted(str(k) for k in set(raw) - names):
        raise DecodeError(RejectReason.UNKNOWN_FIELD, f"{what} field(s) {unknown}")
    if exact and (missing := sorted(names - set(raw))):
        raise DecodeError(RejectReason.UNKNOWN_FIELD, f"{what} lacks field(s) {missing}")
    try:
        return check(what, fields, raw)
    except SchemaError as exc:
        raise DecodeError(RejectReason.BAD_TYPE, str(exc)) from None
