"""master.yaml: the master's settings in a file, validated before anything runs.

Every key is also a ``hactl master`` flag and an environment variable; the precedence is
flag > ``HACTL_MASTER_<KEY>`` > file > default (docs/cli.md). The file is
``/etc/hactl/master.yaml`` when it exists, or ``--config`` / ``HACTL_MASTER_CONFIG``. Unknown
and duplicate keys, wrong types and bad durations are ``file:line`` errors.

Example::

    reactors: /usr/share/hactl/reactors
    states: /etc/hactl/states
    pillar: [/etc/hactl/pillar/site.yaml]
    lost_after: 30s
    reconcile_interval: 5s
    retention: 7d
    notify:                      # webhooks (master/notify.py): signed, retried, never blocking
      - url: https://hooks.example.org/hactl
        match: ["hactl/event/alert/**", "hactl/reactor/*/failed"]
        secret_file: /etc/hactl/webhook.secret
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from hactl import yamlsrc
from hactl.errors import ConfigError, HactlError, UsageError
from hactl.master.notify import Sink
from hactl.schema import Field, SchemaError, check
from hactl.timeparse import parse_duration

DEFAULT_PATH: Final = Path("/etc/hactl/master.yaml")
_DURATIONS: Final = ("retention", "lost_after", "ack_wait", "reconcile_interval")

#: every key, its type and bounds (the flags' defaults live on the flags)
FIELDS: Final = (
    Field("port", (int,), required=False, between=(-1, 65535)),
    Field("host", (str,), required=False),
    Field("retention", (str,), required=False, doc="a duration: 7d"),
    Field("max_bytes", (int,), required=False, between=(1, 2**50)),
    Field("replicas", (int,), required=False, between=(1, 5)),
    Field("reactors", (str,), required=False, doc="folder of rules"),
    Field("observe", (bool,), required=False),
    Field("states", (str,), required=False, doc="state tree"),
    Field("pillar", (list,), required=False, doc="extra pillar files"),
    Field("lost_after", (str,), required=False),
    Field("ack_wait", (str,), required=False),
    Field("allow_unreachable", (bool,), required=False),
    Field("reconcile_interval", (str,), required=False),
    Field("metrics", (str,), required=False, doc="host:port of the Prometheus endpoint"),
    Field("nats_monitor", (str,), required=False, doc="host:port of nats-server's /varz"),
    Field(
        "notify",
        (list,),
        required=False,
        doc="sinks: [{url, match: [globs], secret_file, kind: webhook|alertmanager}]",
    ),
)


def parse_master_config(text: str, source: str) -> dict[str, Any]:
    """The keys the file sets (only those), checked; ConfigError names ``source:line``."""
    doc = yamlsrc.load(text, source)
    raw = {} if doc.data is None else doc.data
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping", file=source, line=1)
    try:
        checked = check("master.yaml", FIELDS, raw)
    except SchemaError as exc:
        line = (
            doc.line(exc.field)
            if exc.field
            else next((doc.line(str(k)) for k in raw if k not in {f.name for f in FIELDS}), 1)
        )
        raise ConfigError(str(exc), file=source, line=line) from None
    out = {k: v for k, v in checked.items() if k in raw}
    for key in _DURATIONS:
        if key in out:
            try:
                parse_duration(out[key])
            except UsageError as exc:
                raise ConfigError(f"{key}: {exc}", file=source, line=doc.line(key)) from None
    if "notify" in out:
        out["notify"] = _sinks(out["notify"], source, doc.line("notify"))
    pillar = out.get("pillar")
    if pillar is not None and not all(isinstance(p, str) and p for p in pillar):
        raise ConfigError("pillar: a list of file paths", file=source, line=doc.line("pillar"))
    return out


def load_master_config(path: Path | None) -> tuple[dict[str, Any], str]:
    """(settings, source) from ``path``, else from DEFAULT_PATH when it exists, else none."""
    chosen = path if path is not None else (DEFAULT_PATH if DEFAULT_PATH.is_file() else None)
    if chosen is None:
        return {}, ""
    try:
        text = chosen.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc.strerror}", file=str(chosen)) from None
    return parse_master_config(text, str(chosen)), str(chosen)


def merged(given: Mapping[str, Any], from_file: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` (the flags; a value None means "left at its default") over the file."""
    return {**from_file, **{k: v for k, v in given.items() if v is not None}}


def _sinks(raw: list[Any], source: str, line: int | None) -> tuple[Sink, ...]:
    """``notify``: each a webhook with its tag globs and an optional HMAC secret file."""
    out = []
    for i, spec in enumerate(raw):
        where = f"notify[{i}]"
        if not isinstance(spec, dict) or set(spec) - {
            "url",
            "match",
            "secret_file",
            "kind",
            "resend",
        }:
            raise ConfigError(
                f"{where}: url, match and optionally secret_file, kind and resend",
                file=source,
                line=line,
            )
        match = spec.get("match") or ["hactl/event/alert/**"]
        if not isinstance(match, list) or not all(isinstance(g, str) for g in match):
            raise ConfigError(f"{where}.match: a list of tag globs", file=source, line=line)
        secret = b""
        if spec.get("secret_file"):
            try:
                secret = Path(str(spec["secret_file"])).read_bytes().strip()
            except OSError as exc:
                raise ConfigError(
                    f"{where}.secret_file: {exc.strerror}", file=source, line=line
                ) from None
        try:
            kind = str(spec.get("kind") or "webhook")
            resend = parse_duration(str(spec.get("resend") or "60s"))
            out.append(Sink(str(spec.get("url", "")), tuple(match), secret, kind, resend))
        except (ValueError, HactlError) as exc:
            raise ConfigError(f"{where}: {exc}", file=source, line=line) from None
    return tuple(out)
