"""``hactl config schema minion|master``: JSON Schemas of the configuration files."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hactl.cli.runner import fail, print_json
from hactl.errors import UsageError
from hactl.master.config import FIELDS as MASTER_FIELDS
from hactl.minion.config_schema import json_schema as minion_schema
from hactl.schema import json_schema

app = typer.Typer(help="The configuration files' formats.", no_args_is_help=True)


def master_schema() -> dict[str, Any]:
    """master.yaml as a JSON Schema."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **json_schema(MASTER_FIELDS, "hactl master.yaml"),
    }


@app.command()
def schema(
    which: Annotated[str, typer.Argument(help="minion or master")],
) -> None:
    """Print the JSON Schema of minion.yaml or master.yaml (for an editor's YAML checks:
    `hactl config schema minion > minion.schema.json`)."""
    schemas = {"minion": minion_schema, "master": master_schema}
    if which not in schemas:
        fail(UsageError(f"no schema {which!r}: minion or master"))
    print_json(schemas[which]())
