"""The project's one schema mechanism: typed fields checked before anything runs.

A schema is a tuple of :class:`Field`. :func:`check` turns a mapping of given values into the
checked values with defaults filled in, or raises :class:`SchemaError` naming the field and
the reason. Every argument list uses it: minion executors (``minion/executors``), state
resources (``master/states/resources.py``), reactor actions (checked when rules load, again
with the rendered values when they fire), beacon items (``hactl/wire/beacons.py``) and config
sections. Callers turn a SchemaError into their layer's error (a command refusal, a
``file:line:`` rule error).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hactl.errors import HactlError


class SchemaError(HactlError):
    """A value does not fit its schema: ``field`` (may be '') and ``reason``; the message
    reads ``owner: field reason`` (``haproxy.set_state: state must be one of ...``)."""

    def __init__(self, owner: str, field: str, reason: str) -> None:
        super().__init__(f"{owner}: {field} {reason}" if field else f"{owner}: {reason}")
        self.owner = owner
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Field:
    """One named value: accepted types, required or a default, allowed values, a range."""

    name: str
    types: tuple[type, ...]
    required: bool = True
    default: Any = None
    choices: tuple[Any, ...] = ()
    #: numbers only: the accepted range (a caller-supplied timeout has a ceiling)
    between: tuple[float, float] | None = None
    #: a value that may still be a template (``{{ ... }}``) at load time: its type is
    #: checked when it is rendered
    templated: bool = False
    doc: str = ""

    def problem(self, value: Any) -> str:
        """Why ``value`` does not fit ('' when it does)."""
        if isinstance(value, bool) and bool not in self.types:
            return f"must be {type_names(self.types)}, got a boolean"
        if not isinstance(value, self.types):
            return f"must be {type_names(self.types)}, got {type(value).__name__}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
        if self.between is not None:
            low, high = self.between
            if not (isinstance(value, int | float) and low <= value <= high):
                return f"must be from {low:g} to {high:g}, got {value!r}"
        return ""


def is_template(value: Any) -> bool:
    """A string still to be rendered."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check(
    owner: str, fields: Sequence[Field], given: Mapping[str, Any], *, rendered: bool = True
) -> dict[str, Any]:
    """The checked values of ``given`` with defaults filled in; a missing or ``None`` optional
    value takes its default. With ``rendered=False`` (a rule at load time) a templated field
    holding a template is accepted as is; its value is checked once rendered."""
    known = {f.name for f in fields}
    unknown = sorted(str(k) for k in given if k not in known)
    if unknown:
        raise SchemaError(
            owner,
            "",
            f"unknown argument(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
        )
    out: dict[str, Any] = {}
    for f in fields:
        value = given.get(f.name)
        if value is None:
            if f.required:
                raise SchemaError(owner, "", f"missing argument {f.name!r}")
            out[f.name] = f.default
            continue
        if not rendered and f.templated and is_template(value):
            out[f.name] = value
            continue
        if why := f.problem(value):
            raise SchemaError(owner, f.name, why)
        out[f.name] = value
    return out


def type_names(types: tuple[type, ...]) -> str:
    """``str or int`` for messages."""
    return " or ".join(t.__name__ for t in types)


_JSON_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    dict: "object",
}


def json_schema(fields: Sequence[Field], title: str = "") -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) object for ``fields``: what an editor can check a YAML
    file against (the same types, choices, ranges and required names :func:`check` applies)."""
    props: dict[str, Any] = {}
    for f in fields:
        kinds = sorted({_JSON_TYPES[t] for t in f.types if t in _JSON_TYPES})
        prop: dict[str, Any] = {"type": kinds[0] if len(kinds) == 1 else kinds}
        if "integer" in kinds and "number" in kinds:
            prop["type"] = "number"
        if f.choices:
            prop["enum"] = list(f.choices)
        if f.between is not None:
            prop["minimum"], prop["maximum"] = f.between
        if f.doc:
            prop["description"] = f.doc
        if not f.required and f.default is not None and not callable(f.default):
            prop["default"] = f.default
        props[f.name] = prop
    out: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
    }
    if title:
        out["title"] = title
    if required := [f.name for f in fields if f.required]:
        out["required"] = required
    return out
