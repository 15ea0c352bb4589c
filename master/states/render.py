"""The sandboxed Jinja environment that renders init.yaml files and config templates.

Undefined names are errors (StrictUndefined); templates cannot reach Python internals
(SandboxedEnvironment). A failure names the template file and its line.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import jinja2
import markupsafe
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hactl.errors import StateError


def environment(root: Path, derived: set[str] | None = None) -> ImmutableSandboxedEnvironment:
    """One environment per tree; templates are loaded relative to ``root`` (the tree).

    Values computed from secrets (a RabbitMQ password hash is an offline brute-force target)
    are added to ``derived``, so they are masked in diffs and logs like the secrets are."""
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.tests["contains"] = lambda seq, item: item in seq
    sink = derived if derived is not None else set()

    def password_hash(password: str, salt_from: str = "") -> str:
        out = rabbitmq_password_hash(password, salt_from)
        sink.add(out)
        return out

    def url_quote(value: str) -> str:
        # a user or password inside a URL (transport_url, [database] connection): every
        # reserved character percent-encoded; an encoded secret is masked like the secret
        out = quote(str(value), safe="")
        if out != str(value):
            sink.add(out)
        return out

    env.filters["rabbitmq_password_hash"] = password_hash
    env.filters["url_quote"] = url_quote
    env.globals["fail"] = _fail
    return env


def _fail(message: str) -> None:
    """``{{ fail("why") }}``: a template refuses a pillar it cannot render (file and line)."""
    raise jinja2.TemplateRuntimeError(str(message))


_OVERLAYS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _yaml_values(env: ImmutableSandboxedEnvironment) -> ImmutableSandboxedEnvironment:
    """The overlay of ``env`` whose expressions render as YAML values (one per env)."""
    overlay = _OVERLAYS.get(env)
    if overlay is None:
        overlay = _OVERLAYS[env] = env.overlay(finalize=_yaml_value)
    return overlay


def _yaml_value(value: Any) -> str:
    """One expression's output as a YAML flow value (JSON is a subset YAML reads)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return json.dumps(str(value))


_CONFIG_OVERLAYS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_LINE_BREAK = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_HAPROXY_SPECIAL = re.compile(r"([\\#\"'])")
#: one PEM block (RFC 7468): its label, base64 lines, the same label at the end
_PEM_BLOCK = r"-----BEGIN ([A-Z0-9 ]+)-----\n(?:[A-Za-z0-9+/=]{1,76}\n)+-----END \1-----\n"
_PEM = re.compile(rf"(?:{_PEM_BLOCK})+")


def pem_value(value: str) -> str:
    """``value`` as PEM blocks and nothing else (a certificate chain and its key), or
    ValueError: a PEM file is the one config a value may span lines of."""
    text = value.replace("\r\n", "\n").strip() + "\n"
    if not _PEM.fullmatch(text):
        raise ValueError("not PEM: a value of a .pem template is BEGIN/END blocks only")
    return text


def _config_format(name: str) -> str:
    """How a config template's expressions are escaped, by the template's file name."""
    base = name.rsplit("/", 1)[-1]
    if base.endswith(".json.j2"):
        return "json"
    if base.endswith(".pem.j2"):
        return "pem"
    for fmt in ("haproxy", "keepalived"):
        if base.startswith(fmt):
            return fmt
    return "lines"


def _config_value(fmt: str) -> Callable[[Any], Any]:
    """The finalize hook of one config format: every ``{{ expression }}`` of a pillar value
    stays one value of that format -- a line break (which would add a directive) is refused
    everywhere but in a ``.pem`` template (whose value must be PEM blocks only); HAProxy's
    quote, comment and escape characters are backslash-escaped (HAProxy
    reads them back as the value); keepalived's quote and braces are refused (it has no
    escape); JSON strings are escaped (``tojson`` output is already JSON and kept)."""

    def finalize(value: Any) -> Any:
        if isinstance(value, markupsafe.Markup) or not isinstance(value, str):
            if fmt != "json" and _LINE_BREAK.search(str(value)):
                raise ValueError(f"a value renders a line break: {str(value)[:60]!r}")
            return value
        if fmt == "json":
            return json.dumps(value)[1:-1]
        if fmt == "pem":
            return pem_value(value)
        if _LINE_BREAK.search(value):
            raise ValueError(f"a value renders a line break: {value[:60]!r}")
        if fmt == "haproxy":
            return _HAPROXY_SPECIAL.sub(r"\\\1", value)
        if fmt == "keepalived" and any(c in value for c in '"{}'):
            raise ValueError(f"a keepalived value with a quote or a brace: {value[:60]!r}")
        return value

    return finalize


def _config_values(env: ImmutableSandboxedEnvironment, name: str) -> ImmutableSandboxedEnvironment:
    """The overlay of ``env`` that escapes expressions for ``name``'s config format."""
    per_env = _CONFIG_OVERLAYS.setdefault(env, {})
    fmt = _config_format(name)
    if fmt not in per_env:
        per_env[fmt] = env.overlay(finalize=_config_value(fmt))
    overlay: ImmutableSandboxedEnvironment = per_env[fmt]
    return overlay


def rabbitmq_password_hash(password: str, salt_from: str = "") -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password)).

    The 4-byte salt is derived from ``salt_from`` (the user name) so a rendered
    definitions.json is stable across applies (no spurious diff, no needless restart).
    """
    salt = hashlib.sha256(f"hactl:{salt_from}".encode()).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _template_line(tb: TracebackType | None, filename: str) -> int | None:
    """Jinja rewrites tracebacks so a template frame carries the template's own line."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render(
    env: ImmutableSandboxedEnvironment, name: str, context: Mapping[str, Any], *, state: str
) -> str:
    """Render the template ``name`` (a path relative to the tree) or raise a StateError.

    In a state's ``init.yaml`` every ``{{ expression }}`` becomes one YAML value (a JSON
    scalar, list or map, which YAML reads as is): a pillar value with a newline or a colon
    cannot add keys or resources. Build strings inside the expression (``{{ a ~ "/b" }}``).
    In a config template each expression stays one value of its format (``_config_value``)."""
    env = _yaml_values(env) if name.endswith("init.yaml") else _config_values(env, name)
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound:
        raise StateError(f"template {name} not found", file=name, state=state) from None
    except jinja2.TemplateSyntaxError as exc:
        raise StateError(
            f"template syntax: {exc.message}",
            file=exc.filename or name,
            line=exc.lineno,
            state=state,
        ) from None
    try:
        return template.render(**context)
    except jinja2.UndefinedError as exc:
        line = _template_line(exc.__traceback__, template.filename or "")
        raise StateError(
            f"undefined in template: {exc.message}", file=template.filename, line=line, state=state
        ) from None
    except jinja2.TemplateError as exc:
        line = _template_line(exc.__traceback__, template.filename or "")
        raise StateError(
            f"template error: {exc}", file=template.filename, line=line, state=state
        ) from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:  # from filters/tests
        line = _template_line(exc.__traceback__, template.filename or "")
        raise StateError(
            f"template error: {type(exc).__name__}: {exc}",
            file=template.filename,
            line=line,
            state=state,
        ) from None
