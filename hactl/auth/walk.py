"""The permission-table walk: every identity against every subject a stream or KV bucket
captures, and what the table says of each (pure; ``docs/security.md`` prints it, a unit test
keeps the two equal, and ``tests/integration/test_reply_stores.py`` proves each cell against a
real server).

A cell is either the identity's **own grant** (it may publish there, so the server stores what
it sends) or **refused**: a direct publish is a permissions violation, and no request the
identity may send -- any JetStream API call, any PubAck-answered publish -- stores its answer
there when the reply subject names it (the stores live in their own account; perms.py).

``python -m hactl.auth.walk`` prints the table as docs/security.md carries it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hactl.auth.perms import (
    APPROVAL_BUCKET,
    AUDIT_STREAM,
    EVENTS_STREAM,
    JOBS_STREAM,
    LEASE_BUCKET,
    LOCK_BUCKET,
    MAINT_BUCKET,
    SINGLETON_BUCKET,
    VIEW_BUCKET,
    Identity,
    permissions,
)
from hactl.wire.tags import subject_matches

#: the identities walked, as the tests' servers name them: a minion (node ctl1), a person of
#: each role, a master
WALKED = (("minion", "ctl1"), ("operator", "operator"), ("admin", "admin"), ("master", "master"))
#: stand-ins in a target: the walked identity's own nkey, and another person's
OWN_KEY = "{own}"
OTHER_KEY = "{other}"


@dataclass(frozen=True, slots=True)
class Target:
    """One subject a store captures, and what it is."""

    subject: str
    stream: str
    what: str

    def concrete(self, own: str, other: str) -> str:
        """The subject with the walked identity's key and another person's filled in."""
        return self.subject.replace(OWN_KEY, own).replace(OTHER_KEY, other)


#: one subject of every kind each stream and bucket captures (ctl1 is the walked minion)
TARGETS: tuple[Target, ...] = (
    Target("hactl.beacon.ctl1.vrrp", EVENTS_STREAM, "ctl1's own beacon"),
    Target("hactl.beacon.ctl2.vrrp", EVENTS_STREAM, "another node's beacon"),
    Target("hactl.minion.ctl2.heartbeat", EVENTS_STREAM, "another node's heartbeat"),
    Target("hactl.minion.ctl2.lost", EVENTS_STREAM, "a lost verdict"),
    Target("hactl.reactor.rule.done", EVENTS_STREAM, "the reactor's trail"),
    Target("hactl.event.alert.drill", EVENTS_STREAM, "an operator event or alert"),
    Target("hactl.job.walk.new", JOBS_STREAM, "a job announcement"),
    Target("hactl.job.walk.ret.ctl1", JOBS_STREAM, "ctl1's own job return"),
    Target("hactl.job.walk.ret.ctl2", JOBS_STREAM, "another node's job return"),
    Target(f"hactl.audit.{OWN_KEY}.fire", AUDIT_STREAM, "one's own audit record"),
    Target(f"hactl.audit.{OTHER_KEY}.fire", AUDIT_STREAM, "another person's audit record"),
    Target(f"$KV.{VIEW_BUCKET}.node.ctl2.galera", f"KV_{VIEW_BUCKET}", "the view"),
    Target(f"$KV.{LOCK_BUCKET}.reconciler", f"KV_{LOCK_BUCKET}", "the reconciler's leader key"),
    Target(f"$KV.{MAINT_BUCKET}.maint.ctl2.galera", f"KV_{MAINT_BUCKET}", "a maintenance window"),
    Target(f"$KV.{LEASE_BUCKET}.galera-bootstrap.u.1", f"KV_{LEASE_BUCKET}", "a bootstrap lease"),
    Target(f"$KV.{APPROVAL_BUCKET}.a1", f"KV_{APPROVAL_BUCKET}", "an approval"),
    Target(f"$KV.{SINGLETON_BUCKET}.lease.svc", f"KV_{SINGLETON_BUCKET}", "a singleton lease"),
)


def may_publish(perms: dict[str, object], subject: str) -> bool:
    """What the server decides for a publish on ``subject`` under ``perms``."""
    pub = perms["publish"]
    assert isinstance(pub, dict)
    allow, deny = pub.get("allow", []), pub.get("deny", [])
    return any(subject_matches(a, subject) for a in allow) and not any(
        subject_matches(d, subject) for d in deny
    )


def cell(kind: str, name: str, key: str, target: Target, other: str) -> bool:
    """True when ``target`` is the identity's own grant (else it is refused)."""
    perms = permissions(Identity(kind, name, key))
    return may_publish(perms, target.concrete(key, other))


#: a syntactically valid nkey for the table (the grants name keys, never read them)
_KEY = "U" + "A" * 55
_OTHER = "U" + "B" * 55


def table() -> str:
    """The walk as a markdown table (docs/security.md)."""
    head = "| subject | store | " + " | ".join(f"{k}" for k, _ in WALKED) + " |"
    rule = "|---|---|" + "---|" * len(WALKED)
    rows = [head, rule]
    for t in TARGETS:
        cells = [
            "own grant" if cell(kind, name, _KEY, t, _OTHER) else "refused" for kind, name in WALKED
        ]
        subject = t.subject.replace(OWN_KEY, "<own key>").replace(OTHER_KEY, "<other key>")
        rows.append(f"| `{subject}` ({t.what}) | `{t.stream}` | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(table(), end="")
