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

#: every setting, declared once: its type, bounds, default and help. The ``hactl master`` flags
#: (hactl/cli/master.py), their ``HACTL_MASTER_<KEY>`` variables, master.yaml's checks and the
#: CLI reference are all made from this; ``notify`` is a file-only key (a list of sinks).
FIELDS: Final = (
    Field(
        "port",
        (int,),
        False,
        4222,
        between=(-1, 65535),
        doc="Client port of the embedded server (-1: any free)",
    ),
    Field("host", (str,), False, "127.0.0.1", doc="Listen address of the embedded server"),
    Field("retention", (str,), False, "7d", doc="Keep events this long (JetStream max age)"),
    Field(
        "max_bytes",
        (int,),
        False,
        1024**3,
        between=(1, 2**50),
        doc="Keep at most this many bytes of events",
    ),
    Field(
        "replicas", (int,), False, 1, between=(1, 5), doc="JetStream replicas of the event stream"
    ),
    Field(
        "reactors", (str,), False, None, doc="Folder of reactor rules (reactors/); none: no reactor"
    ),
    Field(
        "observe",
        (bool,),
        False,
        False,
        doc="Evaluate rules and report every action without doing it",
    ),
    Field("states", (str,), False, None, doc="State tree for the state.apply action"),
    Field("pillar", (list,), False, None, doc="Extra pillar for state.apply"),
    Field("lost_after", (str,), False, "30s", doc="A minion silent this long is lost"),
    Field(
        "ack_wait",
        (str,),
        False,
        "10s",
        doc="Redeliver an event a master did not finish within this",
    ),
    Field(
        "allow_unreachable",
        (bool,),
        False,
        False,
        doc="Let galera.recover_cluster proceed without every member",
    ),
    Field(
        "reconcile_interval",
        (str,),
        False,
        "5s",
        doc="Converge every HAProxy to the desired state this often (0: never)",
    ),
    Field(
        "metrics",
        (str,),
        False,
        "",
        doc="Serve Prometheus metrics on host:port (e.g. 127.0.0.1:9464; '' = off)",
    ),
    Field(
        "nats_monitor",
        (str,),
        False,
        "",
        doc="The embedded nats-server's HTTP monitoring on host:port ('' = off)",
    ),
    Field(
        "notify",
        (list,),
        required=False,
        doc="sinks: [{url, match: [globs], secret_file, kind: webhook|alertmanager}]",
    ),
)
FIELD: Final = {f.name: f for f in FIELDS}
#: the settings that are also flags (every key but the file-only ``notify``)
FLAG_KEYS: Final = tuple(f.name for f in FIELDS if f.name != "notify")


def env_var(key: str) -> str:
    """The environment variable of a setting: ``HACTL_MASTER_<KEY>``."""
    return f"HACTL_MASTER_{key.upper()}"


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
