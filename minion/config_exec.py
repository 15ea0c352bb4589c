"""minion.yaml: what the minion's executors may do -- the services they may touch (how to
run each and how to know it runs), the config checks (which, and as whom), the content policy
and the kernel settings. Each section is checked here; minion/config.py assembles them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from hactl.errors import ConfigError
from hactl.minion.executors.base import (
    DEFAULT_CHECKS,
    DEFAULT_ROOT_CHECKS,
    DEFAULT_SYSCTLS,
    ServiceCommands,
)
from hactl.minion.executors.policy import ContentPolicy

SERVICE_ACTIONS = ("start", "stop", "reload", "restart", "status", "pre_stop")
_SYSCTL = re.compile(r"[a-z0-9_]+(\.[a-z0-9_-]+)+")


def services(
    raw: dict[str, Any], bad: Callable[[str, str], ConfigError]
) -> dict[str, ServiceCommands]:
    """``services``: argument lists per action (no shell), a pidfile (and the pid files of
    its other processes), a start grace, its command line."""
    services: dict[str, ServiceCommands] = {}
    for name, spec in dict(raw.get("services") or {}).items():
        extra = {"pidfile", "start_grace", "process", "pidfiles"}
        if not isinstance(spec, dict) or set(spec) - {*SERVICE_ACTIONS, *extra}:
            raise bad(
                "services",
                f"{name}: give argument lists for {', '.join(SERVICE_ACTIONS)}"
                " and optionally a pidfile, pidfiles, a start_grace and a process",
            )
        for action, argv in spec.items():
            if action == "pidfile":
                if not isinstance(argv, str):
                    raise bad("services", f"{name}.pidfile: must be a path")
                continue
            if action == "pidfiles":
                if not isinstance(argv, list) or not all(
                    isinstance(a, str) and a.startswith("/") for a in argv
                ):
                    raise bad("services", f"{name}.pidfiles: a list of absolute paths")
                continue
            if action == "start_grace":
                if (
                    isinstance(argv, bool)
                    or not isinstance(argv, int | float)
                    or not (0 <= argv <= 600)
                ):
                    raise bad("services", f"{name}.start_grace: seconds, 0-600")
                continue
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                raise bad("services", f"{name}.{action}: must be a list of strings (no shell)")
        argvs: dict[str, tuple[str, ...]] = {a: tuple(v) for a, v in spec.items() if a not in extra}
        pidfile = str(spec.get("pidfile") or "")
        grace = float(spec.get("start_grace") or 0.0)
        process = tuple(spec.get("process") or ())
        if process and not process[0]:
            raise bad("services", f"{name}.process: the program first, then its arguments")
        pidfiles = tuple(spec.get("pidfiles") or ())
        services[str(name)] = ServiceCommands(
            **argvs, pidfile=pidfile, start_grace=grace, process=process, pidfiles=pidfiles
        )
    return services


def check_user(raw: Mapping[str, Any], bad: Callable[[str, str], ConfigError]) -> str:
    """``check_user``: a user name (checks run as it when the minion is root); ``root`` turns
    the sandbox off. Existence is checked when a check runs (a fresh node may add it later)."""
    user = raw.get("check_user", "nobody")
    if not isinstance(user, str) or not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
        raise bad("check_user", "a user name like nobody (root: checks run as root)")
    return user


def root_checks(raw: Mapping[str, Any], bad: Callable[[str, str], ConfigError]) -> frozenset[str]:
    """``checks_as_root``: names of check commands that run as the minion, not sandboxed."""
    names = raw.get("checks_as_root", sorted(DEFAULT_ROOT_CHECKS))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad("checks_as_root", "a list of check command names, like [keepalived]")
    return frozenset(names)


def policy(raw: Any, bad: Callable[[str, str], ConfigError]) -> ContentPolicy:
    """``content_policy``: each key a list of strings, replacing that key's default."""
    if raw is None:
        return ContentPolicy()
    if not isinstance(raw, dict):
        raise bad("content_policy", "must be a mapping")
    names = {f.name for f in fields(ContentPolicy)}
    values: dict[str, frozenset[str]] = {}
    for key, items in raw.items():
        if key not in names:
            raise bad("content_policy", f"unknown key {key!r} (known: {', '.join(sorted(names))})")
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise bad("content_policy", f"{key}: a list of strings")
        values[str(key)] = frozenset(items)
    return ContentPolicy(**values)


def sysctls(raw: Any, source: str) -> frozenset[str]:
    """``sysctls``: the kernel settings ``sysctl.present`` may set on this node."""
    if raw is None:
        return DEFAULT_SYSCTLS
    if not isinstance(raw, list) or not all(
        isinstance(n, str) and _SYSCTL.fullmatch(n) for n in raw
    ):
        raise ConfigError("sysctls: a list of names like net.ipv4.ip_nonlocal_bind", file=source)
    return frozenset(raw)


def checks(raw: Any, source: str) -> dict[str, tuple[str, ...]]:
    """``check_commands``: a mapping name -> argv (an absolute program, ``{path}`` once), or a
    list of the built-in names (haproxy, keepalived)."""
    if raw is None:
        return dict(DEFAULT_CHECKS)
    if isinstance(raw, list):
        unknown = [n for n in raw if n not in DEFAULT_CHECKS]
        if unknown:
            why = f"check_commands: no built-in check {unknown[0]!r} (give its argv)"
            raise ConfigError(why, file=source)
        return {str(n): DEFAULT_CHECKS[n] for n in raw}
    if not isinstance(raw, dict):
        raise ConfigError("check_commands: a mapping name -> argv", file=source)
    out: dict[str, tuple[str, ...]] = {}
    for name, argv in raw.items():
        ok = (
            isinstance(argv, list)
            and argv
            and all(isinstance(a, str) for a in argv)
            and argv[0].startswith("/")
            and argv.count("{path}") == 1
        )
        if not ok:
            raise ConfigError(
                f"check_commands.{name}: a list starting with an absolute program "
                "and holding '{path}' exactly once",
                file=source,
            )
        out[str(name)] = tuple(argv)
    return out
