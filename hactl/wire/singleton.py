"""Singleton services: the spec, the lease record and the renewal contract (pure functions).

A singleton is a service that must run on exactly one node (seed 001's Pacemaker primitives:
nova-consoleauth, nova-scheduler, the Neutron agents ...). The master grants a time-bounded
lease to one node; that node's minion runs the service only while its lease is current.

**The fencing argument** (docs/singletons.md). A minion renews by a core request on
``hactl.lease.<node>.renew`` (only that node's minion may publish there: hactl/auth/perms.py)
and reads the time ``t0`` on its own monotonic clock *before* sending. When the leading master
acknowledges, the holder's copy may run until ``t0 + lease`` and must be gone by then: the
minion stops it at ``t0 + lease - stop_timeout`` (:func:`stop_at`), and so does an independent
guard process (minion/singleton_guard.py) that needs nothing from the minion but the file it
last wrote -- a hung or dead minion cannot keep its copy alive. The master received that
request at ``t1 >= t0`` (real time) and grants the service elsewhere only after
``t1 + lease * (1 + DRIFT) + MARGIN`` on its own clock (:func:`expires_after`), or once the
holder has said it stopped (``release``). Clock *rates* may differ by ``DRIFT``; offsets do not
matter. A master that starts leading does not know ``t1``: it waits a full lease from then.

Every value here is hostile until :func:`decode_spec`, :func:`decode_lease`,
:func:`renew_request` or :func:`renew_reply` accepted it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

from hactl.errors import DecodeError, RejectReason, TagError
from hactl.schema import Field, SchemaError, check
from hactl.wire.records import NUMBER, json_map, json_record
from hactl.wire.tags import validate_id

SPEC_PREFIX: Final = "singleton-spec"  # KV HACTL_LEASES key of a spec (written by hactl apply)
LEASE_PREFIX: Final = "singleton"  # KV HACTL_LEASES key of the lease record (the master's)
SUBJECT_ROOT: Final = "hactl.lease"
MOVE: Final = "singleton.move"  # the master's command (hactl singleton move)
DRIFT: Final = 0.001  # the clock-rate difference the master allows for (0.1 %)
MARGIN: Final = 0.5  # seconds the master adds beyond that before granting elsewhere
MAX_BYTES: Final = 4096
MAX_ITEMS: Final = 32
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}\Z")
_VIP = re.compile(r"([A-Za-z][A-Za-z0-9_]{0,63})?\Z")

FIELDS: Final = (
    Field("name", (str,), doc="the singleton's name (a-z, 0-9, _ and -)"),
    Field("service", (str,), doc="a service of the minion's own `services` allowlist"),
    Field("nodes", (list,), doc="the nodes allowed to run it"),
    Field("prefer", (list,), required=False, default=[], doc="preference order (first wins)"),
    Field(
        "with_vip",
        (str,),
        required=False,
        default="",
        doc="prefer the holder of this VRRP instance",
    ),
    Field("lease", (int, float), required=False, default=8.0, between=(2, 600)),
    Field("renew", (int, float), required=False, default=1.0, between=(0.2, 60)),
    Field("monitor", (int, float), required=False, default=1.0, between=(0.2, 60)),
    Field(
        "failures", (int,), required=False, default=2, between=(1, 100), doc="threshold: then move"
    ),
    Field("failure_expiry", (int, float), required=False, default=120.0, between=(1, 86_400)),
    Field("stop_timeout", (int, float), required=False, default=2.0, between=(0.5, 120)),
)


@dataclass(frozen=True, slots=True)
class SingletonSpec:
    """One singleton: which service, where it may run, and its timing (seconds)."""

    name: str
    service: str
    nodes: tuple[str, ...]
    prefer: tuple[str, ...] = ()
    with_vip: str = ""
    lease: float = 8.0
    renew: float = 1.0
    monitor: float = 1.0
    failures: int = 2
    failure_expiry: float = 120.0
    stop_timeout: float = 2.0

    def __post_init__(self) -> None:
        owner = f"singleton {self.name!r}"
        if not _NAME.fullmatch(self.name):
            raise SchemaError(owner, "name", "must be 1-63 of a-z, 0-9, _ and - (a letter first)")
        if not _NAME.fullmatch(self.service):
            raise SchemaError(owner, "service", f"is not a service name: {self.service!r}")
        if not _VIP.fullmatch(self.with_vip):
            raise SchemaError(owner, "with_vip", f"is not a VRRP instance name: {self.with_vip!r}")
        for field, ids in (("nodes", self.nodes), ("prefer", self.prefer)):
            try:
                for n in ids:
                    validate_id(n)
            except TagError as exc:
                raise SchemaError(owner, field, str(exc)) from None
        if not self.nodes or len(set(self.nodes)) != len(self.nodes):
            raise SchemaError(owner, "nodes", "must list at least one node, each once")
        if stray := sorted(set(self.prefer) - set(self.nodes)):
            raise SchemaError(owner, "prefer", f"names nodes not in nodes: {stray}")
        if why := timing_problem(self):
            raise SchemaError(owner, "lease", why)

    def as_dict(self) -> dict[str, Any]:
        """The spec as plain values (the state resource's arguments, KV, JSON)."""
        return {
            "name": self.name,
            "service": self.service,
            "nodes": list(self.nodes),
            "prefer": list(self.prefer),
            "with_vip": self.with_vip,
            "lease": self.lease,
            "renew": self.renew,
            "monitor": self.monitor,
            "failures": self.failures,
            "failure_expiry": self.failure_expiry,
            "stop_timeout": self.stop_timeout,
        }

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> SingletonSpec:
        """Checked with the one schema mechanism (SchemaError naming the field)."""
        v = check("singleton.running", FIELDS, args)
        for field in ("nodes", "prefer"):
            if not all(isinstance(n, str) for n in v[field]):
                raise SchemaError("singleton.running", field, "must be a list of node ids")
        return cls(
            name=v["name"],
            service=v["service"],
            nodes=tuple(v["nodes"]),
            prefer=tuple(v["prefer"]),
            with_vip=v["with_vip"],
            lease=float(v["lease"]),
            renew=float(v["renew"]),
            monitor=float(v["monitor"]),
            failures=int(v["failures"]),
            failure_expiry=float(v["failure_expiry"]),
            stop_timeout=float(v["stop_timeout"]),
        )


def timing_problem(spec: SingletonSpec) -> str:
    """Why the timing cannot hold ('' when it can): a holder must survive one lost renewal
    with time left to stop its copy before the lease ends."""
    if spec.stop_timeout + 2 * spec.renew >= spec.lease:
        return (
            f"{spec.lease:g} s must exceed stop_timeout + 2 x renew "
            f"({spec.stop_timeout:g} + 2 x {spec.renew:g} s): one lost renewal would stop it"
        )
    return ""


def stop_at(sent: float, spec: SingletonSpec) -> float:
    """When the holder stops its copy, on its own monotonic clock, after a renewal sent at
    ``sent`` was acknowledged (gone by ``sent + lease``)."""
    return sent + spec.lease - spec.stop_timeout


def expires_after(spec: SingletonSpec) -> float:
    """Seconds after the master heard the holder's last renewal before it may grant the
    singleton elsewhere."""
    return spec.lease * (1 + DRIFT) + MARGIN


def spec_key(name: str) -> str:
    """The KV key of a singleton's spec."""
    return f"{SPEC_PREFIX}.{name}"


def lease_key(name: str) -> str:
    """The KV key of a singleton's lease record."""
    return f"{LEASE_PREFIX}.{name}"


def renew_subject(node: str) -> str:
    """The subject ``node``'s minion renews on (the only one it may)."""
    return f"{SUBJECT_ROOT}.{validate_id(node)}.renew"


def node_of_subject(subject: str) -> str:
    """The node a renewal subject names (DecodeError when it is not one)."""
    parts = subject.split(".")
    if len(parts) != 4 or ".".join(parts[:2]) != SUBJECT_ROOT or parts[3] != "renew":
        raise DecodeError(RejectReason.SUBJECT_MISMATCH, "not a renewal subject", subject)
    try:
        return validate_id(parts[2])
    except TagError:
        raise DecodeError(RejectReason.BAD_TAG, "bad node in subject", subject) from None


def encode_spec(spec: SingletonSpec) -> bytes:
    """JSON (readable with ``nats kv get``)."""
    return json.dumps(spec.as_dict(), sort_keys=True).encode()


def decode_spec(data: bytes) -> SingletonSpec:
    """A spec, strictly (DecodeError with the reason)."""
    raw = json_map(data, "singleton spec", MAX_BYTES)
    try:
        return SingletonSpec.from_args(raw)
    except SchemaError as exc:
        raise DecodeError(RejectReason.BAD_TYPE, str(exc)) from None


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """Who holds a singleton (``holder`` '' = nobody), since when (wall clock, for people),
    granted by which master. The fencing token is the record's KV revision."""

    name: str
    holder: str = ""
    since: float = 0.0
    by: str = ""


def encode_lease(rec: LeaseRecord) -> bytes:
    """JSON."""
    return json.dumps(
        {"name": rec.name, "holder": rec.holder, "since": rec.since, "by": rec.by}, sort_keys=True
    ).encode()


_LEASE = (
    Field("name", (str,)),
    Field("holder", (str,), required=False, default=""),
    Field("since", NUMBER, required=False, default=0.0),
    Field("by", (str,), required=False, default=""),
)


def decode_lease(data: bytes) -> LeaseRecord:
    """A lease record, strictly."""
    raw = json_record(data, "lease record", _LEASE, MAX_BYTES)
    name, holder = raw["name"], raw["holder"]
    if not _NAME.fullmatch(name):
        raise DecodeError(RejectReason.BAD_TYPE, "lease record: name")
    if holder and not _valid_id(holder):
        raise DecodeError(RejectReason.BAD_TYPE, "lease record: holder")
    return LeaseRecord(name, holder, float(raw["since"]), raw["by"][:64])


def _valid_id(node: str) -> bool:
    try:
        validate_id(node)
    except TagError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class RenewItem:
    """One singleton in a renewal: the token the node holds (0: none), whether its copy
    runs, whether it gives the lease back (it stopped: failures, revoked, shutting down), and
    its failure count within the spec's expiry."""

    name: str
    token: int = 0
    running: bool = False
    release: bool = False
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Grant:
    """The master's answer for one singleton: hold it (with the fencing token) or not."""

    hold: bool
    token: int = 0
    reason: str = ""


def encode_request(items: list[RenewItem]) -> bytes:
    """The renewal request body."""
    return json.dumps(
        {
            "items": [
                {
                    "name": i.name,
                    "token": i.token,
                    "running": i.running,
                    "release": i.release,
                    "failures": i.failures,
                }
                for i in items
            ]
        }
    ).encode()


def _int(v: Any, low: int, high: int) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def renew_request(data: bytes) -> list[RenewItem]:
    """The items of a renewal request, strictly (DecodeError)."""
    raw = json_map(data, "renewal", MAX_BYTES)
    if set(raw) != {"items"} or not isinstance(raw["items"], list):
        raise DecodeError(RejectReason.MISSING_FIELD, "renewal: exactly one field, items (a list)")
    if len(raw["items"]) > MAX_ITEMS:
        raise DecodeError(RejectReason.OVERSIZE, f"renewal of {len(raw['items'])} items")
    out: list[RenewItem] = []
    for it in raw["items"]:
        if not isinstance(it, dict) or set(it) != {
            "name",
            "token",
            "running",
            "release",
            "failures",
        }:
            raise DecodeError(
                RejectReason.BAD_TYPE, "renewal item: name/token/running/release/failures"
            )
        name, token, failures = it["name"], it["token"], it["failures"]
        if not (isinstance(name, str) and _NAME.fullmatch(name)):
            raise DecodeError(RejectReason.BAD_TYPE, "renewal item: name")
        if not _int(token, 0, 2**63) or not _int(failures, 0, 10_000):
            raise DecodeError(RejectReason.BAD_TYPE, "renewal item: token/failures")
        if not isinstance(it["running"], bool) or not isinstance(it["release"], bool):
            raise DecodeError(RejectReason.BAD_TYPE, "renewal item: running/release")
        out.append(RenewItem(name, token, it["running"], it["release"], failures))
    if len({i.name for i in out}) != len(out):
        raise DecodeError(RejectReason.BAD_TYPE, "renewal: a singleton named twice")
    return out


def encode_reply(leader: bool, grants: Mapping[str, Grant]) -> bytes:
    """The master's answer: whether it leads (only a leader's acknowledgement counts)."""
    return json.dumps(
        {
            "leader": leader,
            "grants": {
                n: {"hold": g.hold, "token": g.token, "reason": g.reason[:200]}
                for n, g in grants.items()
            },
        }
    ).encode()


def renew_reply(data: bytes) -> tuple[bool, dict[str, Grant]]:
    """(leader, grants) of a master's answer, strictly."""
    raw = json_map(data, "renewal reply", MAX_BYTES)
    leader, grants = raw.get("leader"), raw.get("grants")
    if (
        set(raw) != {"leader", "grants"}
        or not isinstance(leader, bool)
        or not isinstance(grants, dict)
    ):
        raise DecodeError(RejectReason.BAD_TYPE, "renewal reply: leader (bool) and grants (map)")
    out: dict[str, Grant] = {}
    for name, g in grants.items():
        if not (isinstance(name, str) and _NAME.fullmatch(name)) or not isinstance(g, dict):
            raise DecodeError(RejectReason.BAD_TYPE, "renewal reply: grant")
        hold, token, reason = g.get("hold"), g.get("token"), g.get("reason", "")
        if not isinstance(hold, bool) or not _int(token, 0, 2**63) or not isinstance(reason, str):
            raise DecodeError(RejectReason.BAD_TYPE, "renewal reply: hold/token/reason")
        out[name] = Grant(hold, token, reason[:200])
    return leader, out
