"""The event envelope and its strict msgpack codec (pure functions, no I/O).

An event is a msgpack map with exactly the keys ``v`` (schema version), ``id`` (sortable
unique id), ``tag``, ``minion`` (origin id, or ``master``), ``ts`` (epoch seconds) and ``data``
(a map with string keys of msgpack-native values); an event of the next version
(:mod:`hactl.wire.version`) may carry more keys, which are ignored. :func:`decode` never
raises anything but :class:`~hactl.errors.DecodeError`, whose ``reason`` is a stable label
for counters.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from hactl.errors import DecodeError, EncodeError, RejectReason, TagError
from hactl.wire.ids import is_id, new_id
from hactl.wire.tags import expected_origin, tag_to_subject, validate_id, validate_tag
from hactl.wire.version import WRITES
from hactl.wire.version import check as check_version

SCHEMA_VERSION = WRITES  # what this build writes (hactl.wire.version has the window it reads)
MAX_EVENT_BYTES = 1024 * 1024  # 1 MiB, the whole encoded envelope
MAX_DEPTH = 32
FIELDS = ("v", "id", "tag", "minion", "ts", "data")


@dataclass(frozen=True, slots=True)
class Event:
    """One event on the bus. Build with :func:`new_event`; send with :func:`encode`."""

    id: str
    tag: str
    minion: str
    ts: float
    data: Mapping[str, Any] = field(default_factory=dict)
    v: int = SCHEMA_VERSION
    # set by new_event/decode, which validated it: encode() need not validate again (the
    # reactor's hot path). Not an argument; dataclasses.replace() makes an unchecked copy.
    _checked: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def subject(self) -> str:
        """The NATS subject this event travels on."""
        return tag_to_subject(self.tag)

    def as_dict(self) -> dict[str, Any]:
        """The envelope as a plain map, in wire field order."""
        return {
            "v": self.v,
            "id": self.id,
            "tag": self.tag,
            "minion": self.minion,
            "ts": self.ts,
            "data": dict(self.data),
        }

    def as_json(self) -> dict[str, Any]:
        """The envelope with binary values base64-encoded, ready for ``json.dumps``."""
        result = self.as_dict()
        result["data"] = _jsonable(result["data"])
        return result


def new_event(
    tag: str,
    minion: str,
    data: Mapping[str, Any] | None = None,
    *,
    ts: float | None = None,
    ident: str | None = None,
) -> Event:
    """Make a valid event: the tag, origin and data are checked now, not at send time."""
    if ident is not None and not (isinstance(ident, str) and is_id(ident)):
        raise EncodeError("bad_type: id must be a 26-character sortable id")
    when = time.time() if ts is None else float(ts)
    if not math.isfinite(when) or when < 0:
        raise EncodeError("bad_type: ts must be non-negative epoch seconds")
    if not isinstance(tag, str) or not isinstance(minion, str):
        raise EncodeError("bad_type: tag and minion must be strings")
    body = dict(data or {})
    try:
        _check_origin(tag, minion, None)
    except DecodeError as exc:
        raise EncodeError(f"{exc.reason.value}: {exc.detail}") from None
    problem = _check_value(body, 0)
    if problem:
        raise EncodeError(f"bad_type: data: {problem}")
    event = Event(id=ident or new_id(), tag=tag, minion=minion, ts=when, data=body)
    object.__setattr__(event, "_checked", True)
    return event


def encode(event: Event) -> bytes:
    """Serialize an event; raises :class:`EncodeError` if it would be rejected on receipt."""
    body = event.as_dict()
    try:
        if not event._checked:
            _validate(body, None)
        payload: bytes = msgpack.packb(body, use_bin_type=True)
    except DecodeError as exc:
        raise EncodeError(f"{exc.reason.value}: {exc.detail}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(str(exc)) from None
    if len(payload) > MAX_EVENT_BYTES:
        raise EncodeError(f"{len(payload)} bytes is over the {MAX_EVENT_BYTES}-byte limit")
    return payload


def decode(payload: bytes, subject: str | None = None) -> Event:
    """Parse and validate one message. ``subject``, when given, must match tag and origin."""
    if len(payload) > MAX_EVENT_BYTES:
        raise DecodeError(
            RejectReason.OVERSIZE, f"{len(payload)} bytes > {MAX_EVENT_BYTES}", subject
        )
    try:
        obj = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            use_list=True,
            timestamp=0,
        )
    except Exception as exc:  # msgpack raises many types for hostile input
        raise DecodeError(RejectReason.MALFORMED, type(exc).__name__, subject) from None
    if not isinstance(obj, dict):
        raise DecodeError(RejectReason.NOT_A_MAP, f"got {type(obj).__name__}", subject)
    _validate(obj, subject)
    event = Event(
        v=obj["v"],
        id=obj["id"],
        tag=obj["tag"],
        minion=obj["minion"],
        ts=float(obj["ts"]),
        data=obj["data"],
    )
    object.__setattr__(event, "_checked", True)
    return event


def _validate(obj: dict[Any, Any], subject: str | None) -> None:
    def fail(reason: RejectReason, detail: str) -> DecodeError:
        return DecodeError(reason, detail, subject)

    if "v" not in obj:
        raise fail(RejectReason.MISSING_FIELD, "v")
    newer = check_version(obj["v"], subject)
    for name in FIELDS:
        if name not in obj:
            raise fail(RejectReason.MISSING_FIELD, name)
    if len(obj) != len(FIELDS) and not newer:  # all of FIELDS are there: more is unknown
        extra = sorted(str(k) for k in obj if k not in FIELDS)
        raise fail(RejectReason.UNKNOWN_FIELD, ", ".join(extra)[:200])
    ident, tag, origin, ts, data = obj["id"], obj["tag"], obj["minion"], obj["ts"], obj["data"]
    if not isinstance(ident, str) or not is_id(ident):
        raise fail(RejectReason.BAD_TYPE, "id must be a 26-character sortable id")
    if not isinstance(tag, str):
        raise fail(RejectReason.BAD_TYPE, "tag must be a string")
    if not isinstance(origin, str):
        raise fail(RejectReason.BAD_TYPE, "minion must be a string")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts) or ts < 0:
        raise fail(RejectReason.BAD_TYPE, "ts must be non-negative epoch seconds")
    if not isinstance(data, dict):
        raise fail(RejectReason.BAD_TYPE, "data must be a map")
    _check_origin(tag, origin, subject)
    problem = _check_value(data, 0)
    if problem:
        raise fail(RejectReason.BAD_TYPE, f"data: {problem}")


# (tag, origin) pairs already found valid: tags repeat (hactl/beacon/ctl1/haproxy, the
# reactor's hactl/reactor/<rule>/done), and checking one costs a split and a regex per level
_GOOD_ORIGINS: dict[tuple[str, str], bool] = {}


def _check_origin(tag: str, origin: str, subject: str | None) -> None:
    """The tag is valid, the origin may send it, and it arrived on its own subject."""
    if (tag, origin) not in _GOOD_ORIGINS:
        try:
            validate_tag(tag)
            validate_id(origin)
        except TagError as exc:
            raise DecodeError(RejectReason.BAD_TAG, exc.reason, subject) from None
        wanted = expected_origin(tag)
        if wanted is not None and origin != wanted:
            raise DecodeError(
                RejectReason.ORIGIN_MISMATCH, f"minion {origin!r} may not send {tag}", subject
            )
        if len(_GOOD_ORIGINS) >= 20_000:
            _GOOD_ORIGINS.clear()
        _GOOD_ORIGINS[(tag, origin)] = True
    if subject is not None and tag.replace("/", ".") != subject:
        raise DecodeError(RejectReason.SUBJECT_MISMATCH, f"tag {tag} arrived on {subject}", subject)


_SCALARS = frozenset({type(None), bool, int, str, bytes, float})
_SCALAR_TYPES = (bool, int, str, bytes, float)


def _check_value(value: Any, depth: int) -> str | None:
    """Only msgpack's plain types, string map keys, bounded depth (iterative: hot path)."""
    stack = [(value, depth)]
    while stack:
        v, d = stack.pop()
        t = type(v)
        if t in _SCALARS:
            continue
        if d > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH}"
        if t is dict:
            for key, item in v.items():
                if type(key) is not str and not isinstance(key, str):
                    return "map keys must be strings"
                if type(item) not in _SCALARS:
                    stack.append((item, d + 1))
        elif t is list or t is tuple:  # exactly: msgpack's ExtType is a namedtuple
            stack.extend((item, d + 1) for item in v if type(item) not in _SCALARS)
        elif isinstance(v, dict):
            stack.append((dict(v), d))
        elif not isinstance(v, _SCALAR_TYPES):
            return f"unsupported value type {t.__name__}"
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
