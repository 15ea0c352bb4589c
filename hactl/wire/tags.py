"""Tags (Salt-style paths) and their NATS subjects, origin rules and tag globs.

A tag is ``hactl/<kind>/...`` with levels of ``[A-Za-z0-9_-]``; its subject is the tag with
``/`` replaced by ``.``. The kinds and their shapes (DESIGN.md, "Wire format"):

====================================  ==========================  =====================
tag                                   who may send it             levels
====================================  ==========================  =====================
hactl/minion/<id>/start|heartbeat|stop  minion <id>               4
hactl/minion/<id>/lost|skew           master                      4
hactl/beacon/<id>/<beacon>            minion <id>                 4
hactl/job/<jid>/new                   master                      4
hactl/job/<jid>/ret/<id>              minion <id>                 5
hactl/reactor/<rule>/fired|done|failed|suppressed  master         4
hactl/event/<anything...>             anyone (operator events)    >= 3
hactl/audit/<key>/<action>           the person with nkey <key>  4
====================================  ==========================  =====================

Commands travel on ``hactl.cmd.<id>`` (request/reply) and are not events: they are deliberately
outside :data:`STREAM_SUBJECTS`, so JetStream never answers a command request with a PubAck.

Globs: ``*`` as a whole level matches exactly one level; ``*``, ``?`` and ``[...]`` inside a
level match within that level only (``ctl*`` matches ``ctl1``, never ``ctl1/vrrp``); ``**``
matches one or more whole levels, anywhere (``hactl/**/vrrp``); a final ``>`` is the NATS
spelling of ``**``. :meth:`TagGlob.subject` gives the narrowest NATS subject that covers the
glob, so the server filters coarsely and :meth:`TagGlob.match` refines.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass

from hactl.errors import TagError

MASTER_ID = "master"
ROOT = "hactl"
MAX_TAG_LENGTH = 256
MAX_LEVEL_LENGTH = 64

_LEVEL = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
_GLOB_LEVEL = re.compile(r"^[A-Za-z0-9_\-*?\[\]!]{1,64}\Z")

MINION_EVENTS = frozenset({"start", "heartbeat", "stop", "lost", "skew"})
#: minion events only the master sends (about a minion, not from it)
MASTER_MINION_EVENTS = frozenset({"lost", "skew"})
REACTOR_EVENTS = frozenset({"fired", "done", "failed", "suppressed", "pending"})
KINDS = ("minion", "beacon", "job", "reactor", "event", "audit")
#: The beacons a minion may publish (its NATS permissions name each one; the minion's beacon
#: registry must match, a unit test checks it).
BEACON_KINDS = ("vrrp", "haproxy", "service", "galera", "rabbitmq", "supervisor", "singleton")

#: Subjects the HACTL_EVENTS stream captures: every event kind but the audit trail (which has
#: its own stream that nobody may purge) and job traffic, and nothing else.
STREAM_SUBJECTS = tuple(f"{ROOT}.{kind}.>" for kind in KINDS if kind not in ("audit", "job"))
#: Subjects of the HACTL_JOBS stream: job announcements and returns. Apart, so a minion that
#: floods returns (every job id is a new subject, which no per-subject limit bounds) pushes
#: out job returns only, never another node's events, the view's feed or the reactor's trail.
JOB_SUBJECTS = (f"{ROOT}.job.>",)
#: Subjects of the HACTL_AUDIT stream: ``hactl/audit/<nkey public key>/<action>``; only the
#: identity holding that key may publish there, so the subject names who did it.
AUDIT_SUBJECTS = (f"{ROOT}.audit.>",)
#: Subject prefix for request/reply commands: ``hactl.cmd.<id>``.
COMMAND_PREFIX = f"{ROOT}.cmd."


def subject_matches(subject_filter: str, subject: str) -> bool:
    """NATS's own matching of a subject filter (``*`` one token, a final ``>`` one or more)
    against a subject (pure; what the server does for subscriptions and permissions)."""
    f, s = subject_filter.split("."), subject.split(".")
    for i, tok in enumerate(f):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(f) == len(s)


def command_subject(target: str) -> str:
    """The request/reply subject for commands to ``target`` (a minion id or ``master``)."""
    if not _LEVEL.match(target):
        raise TagError(target, "a minion id is 1-64 characters of [A-Za-z0-9_-]")
    return COMMAND_PREFIX + target


@functools.lru_cache(maxsize=4096)
def validate_id(ident: str) -> str:
    """Check a minion id: one tag level. Returns it unchanged."""
    if not _LEVEL.match(ident):
        raise TagError(ident, "a minion id is 1-64 characters of [A-Za-z0-9_-]")
    return ident


def _levels(tag: str) -> list[str]:
    if not isinstance(tag, str):
        raise TagError(repr(tag), "a tag is a string")
    if len(tag) > MAX_TAG_LENGTH:
        raise TagError(tag[:40] + "...", f"longer than {MAX_TAG_LENGTH} characters")
    levels = tag.split("/")
    for level in levels:
        if not _LEVEL.match(level):
            raise TagError(tag, f"level {level!r} is not 1-64 characters of [A-Za-z0-9_-]")
    return levels


@functools.lru_cache(maxsize=65536)  # tags repeat (minions x beacons); errors are not cached
def validate_tag(tag: str) -> str:
    """Check a tag's characters, kind and shape. Returns it unchanged."""
    levels = _levels(tag)
    if levels[0] != ROOT:
        raise TagError(tag, f"tags start with {ROOT}/")
    if len(levels) < 3:
        raise TagError(tag, "a tag has at least three levels: hactl/<kind>/<name>")
    kind = levels[1]
    n = len(levels)
    if kind == "minion":
        if n != 4 or levels[3] not in MINION_EVENTS:
            raise TagError(tag, "expected hactl/minion/<id>/" + "|".join(sorted(MINION_EVENTS)))
    elif kind == "beacon":
        if n != 4:
            raise TagError(tag, "expected hactl/beacon/<id>/<beacon>")
    elif kind == "job":
        if not ((n == 4 and levels[3] == "new") or (n == 5 and levels[3] == "ret")):
            raise TagError(tag, "expected hactl/job/<jid>/new or hactl/job/<jid>/ret/<id>")
    elif kind == "reactor":
        if n != 4 or levels[3] not in REACTOR_EVENTS:
            raise TagError(tag, "expected hactl/reactor/<rule>/" + "|".join(sorted(REACTOR_EVENTS)))
    elif kind == "audit":
        if n != 4:
            raise TagError(tag, "expected hactl/audit/<identity key>/<action>")
    elif kind != "event":
        raise TagError(tag, f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    return tag


def expected_origin(tag: str) -> str | None:
    """The ``minion`` field an event with this (valid) tag must carry; None means anyone."""
    levels = tag.split("/")
    kind = levels[1]
    if kind == "minion":
        return MASTER_ID if levels[3] in MASTER_MINION_EVENTS else levels[2]
    if kind == "beacon":
        return levels[2]
    if kind == "job":
        return levels[4] if levels[3] == "ret" else MASTER_ID
    if kind == "reactor":
        return MASTER_ID
    if kind == "audit":
        return levels[2]
    return None


def tag_to_subject(tag: str) -> str:
    """``hactl/beacon/ctl1/vrrp`` -> ``hactl.beacon.ctl1.vrrp`` (the tag is validated)."""
    return validate_tag(tag).replace("/", ".")


def subject_to_tag(subject: str) -> str:
    """``hactl.beacon.ctl1.vrrp`` -> ``hactl/beacon/ctl1/vrrp`` (the result is validated)."""
    if "/" in subject:
        raise TagError(subject, "a subject has no '/'")
    return validate_tag(subject.replace(".", "/"))


@dataclass(frozen=True, slots=True)
class TagGlob:
    """A compiled tag glob; see the module docstring for the syntax."""

    pattern: str
    levels: tuple[str, ...]

    @classmethod
    def parse(cls, pattern: str) -> TagGlob:
        """Compile ``pattern``; raises :class:`TagError` on a malformed glob."""
        if not pattern or len(pattern) > MAX_TAG_LENGTH:
            raise TagError(pattern, f"a glob is 1-{MAX_TAG_LENGTH} characters")
        raw = pattern.split("/")
        levels: list[str] = []
        for i, text in enumerate(raw):
            level = text
            if level == ">":
                if i != len(raw) - 1:
                    raise TagError(pattern, "'>' is only allowed as the last level")
                level = "**"
            elif "**" in level and level != "**":
                raise TagError(pattern, "'**' must be a whole level")
            elif not _GLOB_LEVEL.match(level):
                raise TagError(pattern, f"level {level!r} has characters a tag cannot contain")
            levels.append(level)
        if levels[0] != "**" and not _match((levels[0],), (ROOT,)):
            raise TagError(pattern, f"every tag starts with {ROOT}/, so this glob matches nothing")
        return cls(pattern=pattern, levels=tuple(levels))

    def match(self, tag: str) -> bool:
        """True when ``tag`` matches this glob."""
        return _match(self.levels, tuple(tag.split("/")))

    def subject(self) -> str:
        """The narrowest NATS subject whose matches include every tag this glob matches."""
        return ".".join(self._tokens())

    def subjects(self) -> tuple[str, ...]:
        """Like :meth:`subject`, but one subject per event kind the glob can match.

        ``hactl/**`` becomes ``hactl.minion.>``, ``hactl.beacon.>`` ... and so never covers
        the ``hactl.cmd.*`` request subjects, whose payloads are not events.
        """
        tokens = self._tokens()
        if len(tokens) == 1:  # "**" or ">" alone
            return tuple(f"{ROOT}.{kind}.>" for kind in KINDS)
        if tokens[1] not in ("*", ">"):
            return (".".join(tokens),) if tokens[1] in KINDS else ()
        kinds = [k for k in KINDS if _match((self.levels[1],), (k,)) or tokens[1] == ">"]
        if tokens[1] == ">":
            return tuple(f"{ROOT}.{kind}.>" for kind in kinds)
        return tuple(".".join([ROOT, kind, *tokens[2:]]) for kind in kinds)

    def _tokens(self) -> list[str]:
        parts: list[str] = []
        for level in self.levels:
            if level == "**":
                parts.append(">")
                break
            parts.append(level if _LEVEL.match(level) else "*")
        if parts and parts[0] != ">":
            parts[0] = ROOT  # every tag starts with hactl/; parse() checked the glob allows it
        return parts


def _match(pat: tuple[str, ...], levels: tuple[str, ...]) -> bool:
    if not pat:
        return not levels
    head, rest = pat[0], pat[1:]
    if head == "**":
        # one or more levels
        return any(_match(rest, levels[k:]) for k in range(1, len(levels) + 1))
    if not levels:
        return False
    if head == "*" or head == levels[0] or fnmatch.fnmatchcase(levels[0], head):
        return _match(rest, levels[1:])
    return False


@dataclass(frozen=True, slots=True)
class Tag:
    """A valid tag, parsed once: ``hactl/<kind>/<name>/<what>/<rest...>``.

    ``name`` is the minion id (minion, beacon), job id, rule, audit key or the operator
    event's first level; ``what`` the event (start, lost, ...), beacon, ``new``/``ret``,
    outcome or action ('' for a three-level operator event); ``rest`` any deeper levels.
    """

    text: str
    kind: str
    name: str
    what: str = ""
    rest: tuple[str, ...] = ()

    @property
    def levels(self) -> tuple[str, ...]:
        """Every level, ``hactl`` first."""
        return (ROOT, self.kind, self.name, *((self.what,) if self.what else ()), *self.rest)

    @property
    def node(self) -> str:
        """The node a minion or beacon event is about ('' for other kinds)."""
        return self.name if self.kind in ("beacon", "minion") else ""

    def __str__(self) -> str:
        return self.text


@functools.lru_cache(maxsize=65536)
def parse_tag(tag: str) -> Tag:
    """``tag`` validated and split into its parts; :class:`TagError` when it is not one."""
    levels = validate_tag(tag).split("/")
    what = levels[3] if len(levels) > 3 else ""
    return Tag(tag, levels[1], levels[2], what, tuple(levels[4:]))


def try_parse_tag(tag: object) -> Tag | None:
    """:func:`parse_tag`, or None for anything that is not a valid tag (a field of a record
    written by someone else)."""
    if not isinstance(tag, str):
        return None
    try:
        return parse_tag(tag)
    except TagError:
        return None


def _build(*levels: str) -> str:
    return validate_tag("/".join((ROOT, *levels)))


def minion_tag(node: str, what: str) -> str:
    """``hactl/minion/<node>/<what>`` (start, heartbeat, stop; lost and skew: the master's)."""
    return _build("minion", node, what)


def beacon_tag(node: str, beacon: str) -> str:
    """``hactl/beacon/<node>/<beacon>``."""
    return _build("beacon", node, beacon)


def job_tag(jid: str, node: str = "") -> str:
    """``hactl/job/<jid>/new``, or with ``node`` its return ``hactl/job/<jid>/ret/<node>``."""
    return _build("job", jid, "ret", node) if node else _build("job", jid, "new")


def reactor_tag(rule: str, outcome: str) -> str:
    """``hactl/reactor/<rule>/<outcome>``: one decision in the trail."""
    return _build("reactor", rule, outcome)


def audit_tag(key: str, action: str) -> str:
    """``hactl/audit/<identity key>/<action>``."""
    return _build("audit", key, action)


def event_tag(*levels: str) -> str:
    """``hactl/event/<levels...>`` (an operator's or the master's own event)."""
    return _build("event", *levels)
