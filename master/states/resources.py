"""Resource types a state may declare: the explicit registry and each type's argument schema.

A resource in ``init.yaml`` is ``<id>: {<type>: {args...}}``; ``require`` and ``watch`` (lists
of resource ids) may appear among the args of any type. Arguments are checked here, before
anything is rendered or pushed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hactl.errors import StateError
from hactl.schema import Field, SchemaError
from hactl.schema import check as check_schema
from hactl.wire.singleton import FIELDS as SINGLETON_FIELDS
from hactl.wire.singleton import SingletonSpec


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A resource type: its name (``file.managed``), its parameters and its name argument."""

    name: str
    params: tuple[Field, ...]
    name_arg: str


_STR, _INT, _BOOL, _LIST = (str,), (int,), (bool,), (list,)

REGISTRY: dict[str, ResourceType] = {
    "file.managed": ResourceType(
        "file.managed",
        (
            Field("path", _STR),
            Field("source", _STR, required=False),
            Field("contents", _STR, required=False),
            Field("mode", _STR, default="0644", required=False),
            Field("owner", _STR, required=False),
            Field("group", _STR, required=False),
            Field("check", _STR, required=False),
            Field("makedirs", _BOOL, default=False, required=False),
            Field("backup", _BOOL, default=True, required=False),
        ),
        "path",
    ),
    "service.running": ResourceType(
        "service.running",
        (
            Field("name", _STR),
            Field("reload", _BOOL, default=True, required=False),
            Field("save_state", _STR, required=False),
        ),
        "name",
    ),
    # this node a Synced member of the Galera cluster: the first formation (a new cluster on
    # the bootstrap node, the others join); a member with a history is the reactor's
    "galera.member": ResourceType(
        "galera.member",
        (
            Field("bootstrap", _BOOL, default=False, required=False),
            Field("peers", _LIST),
            Field("timeout", _INT, default=300, required=False, between=(1, 3600)),
        ),
        "bootstrap",
    ),
    # this node's broker a member of the site's cluster: the standalone broker Debian's
    # package started at install stopped and its database moved aside, so peer discovery
    # joins it (minion/executors/rabbitmq_member.py)
    "rabbitmq.member": ResourceType(
        "rabbitmq.member",
        (
            Field("service", _STR),
            Field("peers", _LIST),
            Field("seed", _BOOL, default=False, required=False),
            Field("timeout", _INT, default=300, required=False, between=(1, 3600)),
        ),
        "service",
    ),
    # the brokers import a changed definitions.json at once (a new vhost, user, permission)
    "rabbitmq.definitions": ResourceType("rabbitmq.definitions", (Field("path", _STR),), "path"),
    # one database and its user (all privileges on it) on the Galera cluster, run on one
    # member: what an install guide's CREATE DATABASE / GRANT steps do by hand
    "galera.database": ResourceType(
        "galera.database",
        (
            Field("name", _STR),
            Field("user", _STR),
            Field("password", _STR),
            Field("host", _STR, default="%", required=False),
        ),
        "name",
    ),
    # Keystone's fernet key repository, identical on every node (INDEX KEY lines: a secret)
    "keystone.fernet_keys": ResourceType(
        "keystone.fernet_keys",
        (
            Field("dir", _STR),
            Field("keys", _STR),
            Field("owner", _STR, required=False),
            Field("group", _STR, required=False),
        ),
        "dir",
    ),
    # keystone-manage db_sync (when the schema is behind) and bootstrap
    "keystone.db": ResourceType(
        "keystone.db",
        (
            Field("admin_password", _STR),
            Field("region", _STR, default="RegionOne", required=False),
            Field("public_url", _STR, required=False),
            Field("internal_url", _STR, required=False),
            Field("admin_url", _STR, required=False),
        ),
        "region",
    ),
    # a service that runs on exactly one node, under a lease (hactl/wire/singleton.py)
    "singleton.running": ResourceType("singleton.running", SINGLETON_FIELDS, "name"),
    "sysctl.present": ResourceType(
        "sysctl.present",
        (Field("name", _STR), Field("value", (str, int))),
        "name",
    ),
}

REQUISITES = ("require", "watch")
_SYSCTL = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_-]+)+\Z")
_CHECK = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")
_MODE = re.compile(r"^0?[0-7]{3,4}\Z")


def check_args(
    rtype: ResourceType, args: Mapping[str, Any], *, rid: str, file: str, line: int | None
) -> dict[str, Any]:
    """Validated arguments with defaults, or a StateError naming file, line and resource."""

    def bad(detail: str) -> StateError:
        return StateError(detail, file=file, line=line, state=rid)

    extra = {k: v for k, v in args.items() if k not in REQUISITES}
    try:
        out = check_schema(rtype.name, rtype.params, extra)
    except SchemaError as exc:
        why = f"{exc.field} {exc.reason}" if exc.field else exc.reason
        raise bad(f"{rtype.name}: {why}") from None
    if rtype.name == "file.managed":
        if (out["source"] is None) == (out["contents"] is None):
            raise bad("file.managed: give exactly one of 'source' (a template) or 'contents'")
        if not out["path"].startswith("/"):
            raise bad(f"file.managed: path must be absolute, got {out['path']!r}")
        if not _MODE.match(out["mode"]):
            raise bad(f"file.managed: mode must be octal like '0644', got {out['mode']!r}")
        if int(out["mode"], 8) & 0o7000:
            raise bad(f"file.managed: mode {out['mode']}: setuid, setgid and sticky are refused")
        check = out["check"]
        if check is not None and not _CHECK.match(check):
            raise bad(
                f"file.managed: check is the name of one of the minion's check commands "
                f"(haproxy, keepalived, ...), got {check!r}"
            )
    if rtype.name == "singleton.running":
        try:
            SingletonSpec.from_args(out)  # names, nodes, prefer, and a timing that can hold
        except SchemaError as exc:
            raise bad(str(exc)) from None
    if rtype.name == "sysctl.present" and not _SYSCTL.match(out["name"]):
        raise bad(f"sysctl.present: bad sysctl name {out['name']!r}")
    return out


def _names(types: tuple[type, ...]) -> str:
    return " or ".join(
        {"str": "a string", "int": "an integer", "bool": "true/false", "list": "a list"}.get(
            t.__name__, t.__name__
        )
        for t in types
    )
