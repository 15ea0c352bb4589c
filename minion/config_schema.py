"""minion.yaml as a JSON Schema (``hactl config schema minion``), for editors.

Built from the same definitions the parser checks against (minion/config.py): the beacons'
option schemas, the supervision and health-agent fields, the settings dataclasses; a test
checks both know the same top-level keys.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from hactl.minion.beacons import OPTIONS as BEACON_OPTIONS
from hactl.minion.config import _TOP
from hactl.minion.config_exec import SERVICE_ACTIONS
from hactl.minion.executors.base import GaleraSettings, KeystoneSettings, RabbitSettings
from hactl.minion.executors.policy import ContentPolicy
from hactl.minion.health_agent import FIELDS as AGENT_FIELDS
from hactl.minion.singleton import SingletonSettings
from hactl.minion.supervisor import FIELDS as SUPERVISION_FIELDS
from hactl.minion.vrrp_yield import VrrpSettings
from hactl.schema import json_schema as schema_of


def _dataclass_schema(cls: type[Any]) -> dict[str, Any]:
    """A section's JSON Schema from its frozen dataclass (names, JSON types, required)."""
    kinds = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
    props: dict[str, Any] = {}
    required = []
    for f in fields(cls):
        hint = str(f.type)
        if hint.startswith(("tuple", "list")):
            props[f.name] = {"type": "array", "items": {"type": "string"}}
        elif hint.startswith(("Mapping", "dict")):
            props[f.name] = {"type": "object"}
        else:
            props[f.name] = {"type": kinds.get(hint.split(" ", maxsplit=1)[0], "string")}
        if f.default is MISSING and f.default_factory is MISSING:
            required.append(f.name)
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "required": required,
    }


_DESCRIBE = {
    "roles": "free labels sent with heartbeats (controller)",
    "heartbeat_interval": "seconds between heartbeats (the master's liveness)",
    "resync_interval": "seconds between full beacon snapshots (level-triggered rules)",
    "buffer_limit": "events kept while NATS is away (the oldest dropped, counted)",
    "allowed_roots": "folders file.apply may write in",
    "check_commands": "config checks by name: exact argv, absolute program, {path}",
    "check_user": "who config checks run as when the minion is root (root: no sandbox)",
    "checks_as_root": "check commands that stay root (keepalived: it runs nothing)",
    "sysctls": "kernel settings sysctl.present may set",
    "content_policy": "what a rendered config may make a root daemon run or load",
    "supervision": "services the minion restarts when they die (threshold, window)",
    "health_agent": "HAProxy's agent-check for this Galera node (up/down only)",
    "haproxy_socket": "HAProxy's admin socket (haproxy.runtime)",
    "services": "the only services service.* may touch; argv lists where no systemd",
    "beacons": "what the minion watches and reports",
    "command_timeout": "seconds a command may run",
    "galera": "the local MariaDB Galera node (galera.position/bootstrap/start)",
    "rabbitmq": "the local RabbitMQ node's CLI (rabbitmq.forget_node)",
    "keystone": "keystone-manage and keystone.conf (keystone.db)",
    "vrrp": "keepalived track files: vrrp.yield and the process watch",
    "singletons": "where singleton leases, specs and guard logs live (docs/singletons.md)",
    "metrics": "host:port of the Prometheus endpoint (off when absent)",
}


_POLICY_DESCRIBE = {
    "programs": "exact command lines keepalived may run (script, notify*)",
    "providers": "wsrep_provider values mariadbd may load",
    "sst_methods": "wsrep_sst_method values (each runs wsrep_sst_<method>)",
    "db_users": "user values for mariadbd (never root)",
    "track_dirs": "folders of the files keepalived creates as root (track files, notify FIFO)",
    "read_dirs": "folders of the files HAProxy uses (certificates, state, sockets, pid file)",
    "serve_dirs": "folders of the files HAProxy serves or matches (errorfile, maps, ACLs)",
    "oslo_dirs": "folders an oslo.config path option (keystone.conf) may name",
    "formats": "GLOB=haproxy|keepalived|mariadb|oslo|pem: the reader a path gets",
    "keywords": "DAEMON:KEYWORD additions to a daemon's keyword allowlist",
}


def json_schema() -> dict[str, Any]:
    """minion.yaml as a JSON Schema, for editors (``hactl config schema minion``)."""

    def strings(description: str = "") -> dict[str, Any]:  # a fresh dict each: set below
        out: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
        return {**out, "description": description} if description else out

    argv = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    service = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **{a: argv for a in SERVICE_ACTIONS},
            "pidfile": {"type": "string"},
            "pidfiles": {
                "type": "array",
                "items": {"type": "string"},
                "description": "the pid files of the daemon's other processes (keepalived's "
                "-r/-c): a start waits until none names a process still present",
            },
            "start_grace": {"type": "number", "minimum": 0, "maximum": 600},
            "process": {
                **argv,
                "description": "the daemon's command line (program, arguments): found by it "
                "when its pid file is gone",
            },
        },
    }
    number = {"type": "number"}
    props: dict[str, Any] = {
        "id": {"type": "string", "description": "the minion id (ctl1)"},
        "roles": strings(),
        "heartbeat_interval": {**number, "minimum": 0.05, "maximum": 3600},
        "resync_interval": {**number, "minimum": 0.1, "maximum": 86_400},
        "buffer_limit": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
        "allowed_roots": strings(),
        "check_commands": {"type": ["array", "object"]},
        "sysctls": strings(),
        "content_policy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                f.name: strings(_POLICY_DESCRIBE[f.name]) for f in fields(ContentPolicy)
            },
        },
        "supervision": schema_of(SUPERVISION_FIELDS, "supervision"),
        "health_agent": schema_of(AGENT_FIELDS, "health_agent"),
        "haproxy_socket": {"type": "string"},
        "check_user": {"type": "string"},
        "checks_as_root": strings(),
        "services": {"type": "object", "additionalProperties": service},
        "beacons": {
            "type": "object",
            "additionalProperties": False,
            "properties": {n: schema_of(f, n) for n, f in BEACON_OPTIONS.items()},
        },
        "command_timeout": {**number, "minimum": 0.1, "maximum": 3600},
        "galera": _dataclass_schema(GaleraSettings),
        "rabbitmq": _dataclass_schema(RabbitSettings),
        "keystone": _dataclass_schema(KeystoneSettings),
        "vrrp": _dataclass_schema(VrrpSettings),
        "singletons": _dataclass_schema(SingletonSettings),
        "metrics": {"type": "string", "description": "host:port of the Prometheus endpoint"},
    }
    for key, text in _DESCRIBE.items():
        props[key].setdefault("description", text)
    if set(props) != _TOP:  # a key added to the parser and not here (or the reverse)
        raise RuntimeError(f"minion.yaml schema out of date: {sorted(set(props) ^ _TOP)}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "hactl minion.yaml",
        "type": "object",
        "additionalProperties": False,
        "required": ["id"],
        "properties": props,
    }


def markdown() -> str:
    """docs/minion-yaml.md: every key of minion.yaml (from :func:`json_schema`)."""

    def kind(spec: dict[str, Any]) -> str:
        t = spec.get("type", "object")
        text = " or ".join(t) if isinstance(t, list) else str(t)
        if "enum" in spec:
            text += f" ({', '.join(map(str, spec['enum']))})"
        if "minimum" in spec:
            text += f", {spec['minimum']:g}..{spec['maximum']:g}"
        if "default" in spec:
            text += f", default `{spec['default']}`"
        return text

    def rows(props: dict[str, Any], prefix: str, required: list[str]) -> list[str]:
        out = []
        for key, spec in props.items():
            name = f"{prefix}{key}"
            need = " (required)" if key in required else ""
            desc = str(spec.get("description", "")).replace("|", "\\\\|")
            out.append(f"| `{name}` | {kind(spec)}{need} | {desc} |")
            if spec.get("type") == "object" and "properties" in spec:
                out += rows(spec["properties"], f"{name}.", spec.get("required", []))
        return out

    schema = json_schema()
    lines = [
        "# minion.yaml reference",
        "",
        "Every key, generated from the schema the parser checks against",
        "(`python -m hactl.minion.config_schema > docs/minion-yaml.md`; `hactl config schema",
        "minion` prints it as JSON Schema for an editor). docs/minion.md explains what each",
        "part does; docs/deploy.md has a complete example.",
        "",
        "| key | type | what |",
        "|---|---|---|",
        *rows(schema["properties"], "", schema["required"]),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
