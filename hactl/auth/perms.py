"""The one permission table: what each hactl identity may publish and subscribe on NATS.

Pure data and pure functions (no I/O): :func:`permissions` gives the nats-server permission map
of one identity, :func:`render_authorization` the ``authorization { users = [...] }`` block of a
whole deployment. The embedded server, the lab, ``hactl auth export`` and the tests all render
from here; a grant that is not in this file does not exist (docs/security.md explains each row).

Identities (``Identity.kind``):

- ``minion``: one per node. Publishes only its own events (the fixed beacon and lifecycle
  subjects, and job returns), replies to the commands it receives, subscribes only to
  ``hactl.cmd.<id>`` and its own inbox. No JetStream API at all: a JetStream publish is a core
  publish whose PubAck comes back to the inbox.
- ``master``: the reactor. Commands, the view/lease/lock buckets, the event stream and its
  consumers; never the audit stream's delete/purge/update, never a person's audit subject.
- ``admin`` (a person): what ``hactl apply`` needs -- commands, job events, the JetStream API
  with the same denials as a master, and its own audit subject.
- ``operator`` (a person): reads events live and from the stream (direct get: no consumer, so
  it cannot make the server deliver onto any subject of its choosing through one), reads the
  view, fires ``hactl/event/...``, writes its own audit subject. Nothing on ``hactl.cmd.*``.

Every identity's replies arrive on an inbox prefix derived from its public key
(:func:`inbox_prefix`), and only that identity may subscribe there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hactl.errors import ConfigError
from hactl.wire.leases import BOOTSTRAP_PREFIX
from hactl.wire.singleton import SUBJECT_ROOT, renew_subject
from hactl.wire.tags import (
    AUDIT_SUBJECTS,
    BEACON_KINDS,
    COMMAND_PREFIX,
    JOB_SUBJECTS,
    MASTER_ID,
    STREAM_SUBJECTS,
)

EVENTS_STREAM = "HACTL_EVENTS"
JOBS_STREAM = "HACTL_JOBS"  # job announcements and returns, apart from the events
AUDIT_STREAM = "HACTL_AUDIT"  # (hactl/bus/jetstream.py creates both streams)
AUDIT_PREFIX = "hactl.audit"
VIEW_BUCKET = "HACTL_CLUSTER"
LEASE_BUCKET = "HACTL_LEASES"
LOCK_BUCKET = "HACTL_LOCKS"
MAINT_BUCKET = "HACTL_MAINT"  # maintenance windows (hactl/wire/maint.py)
APPROVAL_BUCKET = "HACTL_APPROVALS"  # questions to a person (hactl/wire/approvals.py)
SINGLETON_BUCKET = "HACTL_SINGLETONS"  # singleton specs and lease records (hactl/wire/singleton.py)
REACTOR_CONSUMER = "hactl-reactor"
#: The shared push consumer's fixed deliver subject: every master may bind it (an inbox of
#: the first master would lock the others out).
REACTOR_DELIVER = "_HACTL.reactor"
#: the same for the reactor's consumer of the job stream (rules may watch job returns)
REACTOR_JOBS_CONSUMER = "hactl-reactor-jobs"
REACTOR_JOBS_DELIVER = "_HACTL.reactor-jobs"
INBOX_ROOT = "_HI"

#: what every stream captures (events, jobs, audit): operators, admins and masters hear it
READ_SUBJECTS = (*STREAM_SUBJECTS, *JOB_SUBJECTS, *AUDIT_SUBJECTS)

KINDS = ("minion", "master", "admin", "operator")
PERSON_ROLES = ("operator", "admin")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PUBKEY = re.compile(r"U[A-Z2-7]{55}")

# what must never be done to the audit trail, by anyone
_AUDIT_GUARD = (
    *(
        f"$JS.API.STREAM.{verb}.{AUDIT_STREAM}"
        for verb in ("DELETE", "PURGE", "UPDATE", "MSG.DELETE")
    ),
    "$JS.API.STREAM.RESTORE.>",
    "$JS.API.STREAM.SNAPSHOT.>",
)


@dataclass(frozen=True, slots=True)
class Identity:
    """One authenticated principal: ``kind`` (see :data:`KINDS`), a unique ``name`` (the
    minion id for minions) and its nkey public key."""

    kind: str
    name: str
    public_key: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"identity {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"identity name {self.name!r}: 1-64 characters of [A-Za-z0-9_-]")
        if self.kind == "minion" and self.name == MASTER_ID:
            raise ConfigError(f"a minion cannot be called {MASTER_ID!r}")
        if not _PUBKEY.fullmatch(self.public_key):
            raise ConfigError(f"identity {self.name!r}: not an nkey user public key")

    @property
    def label(self) -> str:
        """``minion:ctl1``, ``admin:alice``."""
        return f"{self.kind}:{self.name}"


def inbox_prefix(public_key: str) -> str:
    """The inbox prefix of the identity with this public key: replies to it arrive under
    ``<prefix>.>`` and nobody else may subscribe there."""
    return f"{INBOX_ROOT}.{public_key}"


def _js(*parts: str) -> str:
    return "$JS.API." + ".".join(parts)


#: what an admin may not ask the JetStream API (see _manager)
_ADMIN_DENY = [_js("STREAM", verb, ">") for verb in ("CREATE", "UPDATE")] + [
    _js("CONSUMER", "CREATE", ">"),
    _js("CONSUMER", "DURABLE", "CREATE", ">"),
]


def _minion(ident: Identity) -> dict[str, Any]:
    n = ident.name
    publish = [f"hactl.beacon.{n}.{b}" for b in BEACON_KINDS]
    publish += [f"hactl.minion.{n}.{e}" for e in ("start", "heartbeat", "stop")]
    publish.append(f"hactl.job.*.ret.{n}")
    # renew its own singleton leases (a core request the leading master answers), never
    # another node's: the subject names the node (hactl/wire/singleton.py)
    publish.append(renew_subject(n))
    # the one JetStream call a minion makes: read (never write) a Galera bootstrap lease, so
    # galera.bootstrap runs only where the master's planner took the epoch's lease
    publish.append(
        _js("DIRECT.GET", f"KV_{LEASE_BUCKET}", f"$KV.{LEASE_BUCKET}.{BOOTSTRAP_PREFIX}.>")
    )
    # and its own maintenance windows and the cluster-wide ones (read, never write), so its
    # supervisor leaves planned work alone while the master is away
    for scope in (n, "all"):
        publish.append(
            _js("DIRECT.GET", f"KV_{MAINT_BUCKET}", f"$KV.{MAINT_BUCKET}.maint.{scope}.*")
        )
    return {
        "publish": {"allow": publish},
        "subscribe": {"allow": [f"{COMMAND_PREFIX}{n}", f"{inbox_prefix(ident.public_key)}.>"]},
        "allow_responses": True,
    }


def _operator(ident: Identity) -> dict[str, Any]:
    publish = [
        "hactl.event.>",
        f"{AUDIT_PREFIX}.{ident.public_key}.>",
        _js("INFO"),
        _js("STREAM.INFO", EVENTS_STREAM),
        _js("DIRECT.GET", EVENTS_STREAM),
        _js("STREAM.INFO", JOBS_STREAM),
        _js("DIRECT.GET", JOBS_STREAM),
        _js("STREAM.INFO", f"KV_{VIEW_BUCKET}"),
        _js("DIRECT.GET", f"KV_{VIEW_BUCKET}"),
        _js("DIRECT.GET", f"KV_{VIEW_BUCKET}", ">"),  # last-by-subject gets name the key
        _js("STREAM.INFO", AUDIT_STREAM),
        _js("DIRECT.GET", AUDIT_STREAM),
        _js("STREAM.INFO", f"KV_{SINGLETON_BUCKET}"),  # who holds which singleton (status)
        _js("DIRECT.GET", f"KV_{SINGLETON_BUCKET}"),
        _js("DIRECT.GET", f"KV_{SINGLETON_BUCKET}", ">"),
        _js("STREAM.INFO", f"KV_{APPROVAL_BUCKET}"),  # pending approvals (status); never answer
        _js("DIRECT.GET", f"KV_{APPROVAL_BUCKET}"),
        _js("DIRECT.GET", f"KV_{APPROVAL_BUCKET}", ">"),
    ]
    subscribe = [*READ_SUBJECTS, f"{inbox_prefix(ident.public_key)}.>"]
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe}}


def _manager(ident: Identity) -> dict[str, Any]:
    """Masters and admins: commands and the JetStream API, less the audit trail's destruction.
    Neither may publish a minion's own events (that would forge a beacon)."""
    publish = [
        f"{COMMAND_PREFIX}>",
        "hactl.job.*.new",
        "hactl.event.>",
        "$JS.API.>",
        f"$JS.ACK.{EVENTS_STREAM}.>",
        f"$JS.ACK.{JOBS_STREAM}.>",
        "$JS.FC.>",
        f"$KV.{VIEW_BUCKET}.>",
        f"$KV.{LEASE_BUCKET}.>",
        f"$KV.{LOCK_BUCKET}.>",
        f"$KV.{MAINT_BUCKET}.>",
        f"$KV.{SINGLETON_BUCKET}.>",
        f"$KV.{APPROVAL_BUCKET}.>",
    ]
    deny = list(_AUDIT_GUARD)
    if ident.kind == "master":  # the reactor's trail and its liveness verdicts
        publish += ["hactl.reactor.>", "hactl.minion.*.lost", "hactl.minion.*.skew"]
    else:  # a person's own audit records, under the key the server authenticated
        publish.append(f"{AUDIT_PREFIX}.{ident.public_key}.>")
        # streams and consumers are the masters' to make: a stream on hactl.cmd.> would read
        # every command and secret, a consumer's deliver subject or a stream's republish
        # target would store messages under subjects an admin may not publish to (another
        # person's audit records, the reactor's trail)
        deny += _ADMIN_DENY
    subscribe = [*READ_SUBJECTS, f"{inbox_prefix(ident.public_key)}.>"]
    if ident.kind == "master":
        subscribe += [
            f"{COMMAND_PREFIX}{MASTER_ID}",
            REACTOR_DELIVER,
            REACTOR_JOBS_DELIVER,
            f"{SUBJECT_ROOT}.*.renew",
        ]
    return {
        "publish": {"allow": publish, "deny": deny},
        "subscribe": {"allow": subscribe},
        "allow_responses": True,
    }


def permissions(ident: Identity) -> dict[str, Any]:
    """The nats-server permission map of ``ident`` (the single source of every grant)."""
    if ident.kind == "minion":
        return _minion(ident)
    if ident.kind == "operator":
        return _operator(ident)
    return _manager(ident)


def _value(obj: Any) -> str:
    if isinstance(obj, bool):
        return "true" if obj else "false"
    if isinstance(obj, list):
        return "[" + ", ".join(_value(v) for v in obj) + "]"
    if isinstance(obj, dict):
        return "{ " + ", ".join(f"{k}: {_value(v)}" for k, v in obj.items()) + " }"
    return '"' + str(obj).replace("\\", "\\\\").replace('"', '\\"') + '"'


#: The account that holds every stream and KV bucket. It has no users: nothing is published
#: in it but what the user account's service imports forward (each under its sender's own
#: publish grants) and the deliveries of consumers a master created. A JetStream API answer
#: goes back through the import to the asker's reply subject in the user account, where no
#: stream captures anything -- so no identity can make the server store a message on a
#: subject it may not publish to (a direct get answered onto ``$KV.HACTL_LOCKS.reconciler``
#: wiped the leader key when both lived in one account).
STORE_ACCOUNT = "HACTL_STORE"
#: The account every identity connects to (the permission table applies here).
USER_ACCOUNT = "HACTL"


def store_services() -> tuple[str, ...]:
    """What the user account reaches in the store account as services (request/reply, the
    PubAck or API answer mapped back to the asker): the JetStream API, KV writes, consumer
    acks and flow control, and the subjects the event and audit streams capture."""
    return ("$JS.API.>", "$KV.>", "$JS.ACK.>", "$JS.FC.>", *READ_SUBJECTS)


def store_streams() -> tuple[str, ...]:
    """What consumers in the store account deliver to the user account: inboxes (KV watchers)
    and the reactor's shared deliver subject."""
    return (f"{INBOX_ROOT}.>", REACTOR_DELIVER, REACTOR_JOBS_DELIVER)


#: the store account's JetStream storage cap (the event stream reserves 1 GiB and the audit
#: stream 256 MiB per replica; KV buckets grow within it): an identity that writes without
#: end fills this, never the server's disk
STORE_LIMITS = "max_file: 8G, max_mem: 512M"


def render_authorization(
    identities: list[Identity], *, timeout_s: float = 2.0, jetstream_limits: str = STORE_LIMITS
) -> str:
    """The nats-server ``accounts`` block of a deployment (and the auth timeout): the store
    account with every stream, the user account with one user per nkey and the imports.
    ``jetstream_limits`` (e.g. ``max_file: 2G, max_mem: 64M``) caps the store account."""
    names: set[str] = set()
    users = []
    for ident in sorted(identities, key=lambda i: (KINDS.index(i.kind), i.name)):
        if ident.name in names:
            raise ConfigError(f"identity name {ident.name!r} is used twice")
        names.add(ident.name)
        users.append(f"      # {ident.label}")
        users.append(
            f"      {{ nkey: {_value(ident.public_key)}, allowed_connection_types: "
            f'["STANDARD"], permissions: {_value(permissions(ident))} }}'
        )
    js = f"{{ {jetstream_limits} }}" if jetstream_limits else "enabled"
    # the JetStream API answers one request with many messages (a pull consumer's fetch, a
    # batched direct get): its answers are streamed back, not just the first
    exports = [
        f"      {{ service: {_value(s)}"
        + (", response_type: stream" if s == "$JS.API.>" else "")
        + " }"
        for s in store_services()
    ]
    exports += [f"      {{ stream: {_value(s)} }}" for s in store_streams()]
    imports = [
        f"      {{ service: {{ account: {STORE_ACCOUNT}, subject: {_value(s)} }} }}"
        for s in store_services()
    ]
    imports += [
        f"      {{ stream: {{ account: {STORE_ACCOUNT}, subject: {_value(s)} }} }}"
        for s in store_streams()
    ]
    lines = [
        f"authorization {{ timeout: {timeout_s:g} }}",
        "accounts {",
        f"  {STORE_ACCOUNT}: {{",
        f"    jetstream: {js}",
        "    exports: [",
        *exports,
        "    ]",
        "  }",
        f"  {USER_ACCOUNT}: {{",
        "    users: [",
        *users,
        "    ]",
        "    imports: [",
        *imports,
        "    ]",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"
