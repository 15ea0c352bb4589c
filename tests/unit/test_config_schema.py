"""The exported JSON Schemas accept what the parsers accept and refuse what they refuse."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from hactl.cli.config_cmd import master_schema
from hactl.lab.config import minion_yaml, site_etc
from hactl.lab.net import LabNet
from hactl.minion.config import parse_config
from hactl.minion.config_schema import json_schema


def test_the_lab_minion_yaml_fits_the_schema_and_a_typo_does_not(tmp_path: Path) -> None:
    """A real minion.yaml (the lab's, every section used) validates; `intervall` and a
    string interval are refused by the schema as by the parser."""
    net = LabNet("hx", "10.99.9", ("ctl1", "ctl2", "ctl3"))
    site_etc(tmp_path).mkdir()
    (site_etc(tmp_path) / "rabbitmq-monitor.pw").write_text("pw\n")
    text = minion_yaml(net, tmp_path, "ctl1", {"galera", "rabbitmq"}, supervise=True)
    doc = yaml.safe_load(text)
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema)
    for bad in ({"intervall": 1}, {"interval": "fast"}):
        broken = {**doc, "beacons": {**doc["beacons"], "vrrp": {**doc["beacons"]["vrrp"], **bad}}}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
    assert parse_config(text, "m").id == "ctl1"


def test_master_schema_matches_the_parser() -> None:
    """master.yaml: a good file validates, an unknown key and a wrong type do not."""
    schema = master_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"reactors": "/r", "replicas": 3, "metrics": "127.0.0.1:9464"}, schema)
    for bad in ({"replicass": 3}, {"replicas": "three"}, {"replicas": 9}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_the_minion_yaml_reference_is_current() -> None:
    """docs/minion-yaml.md lists every key the parser knows (generated from the schema)."""
    from hactl.minion.config_schema import markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "minion-yaml.md"
    assert doc.read_text() == markdown(), (
        "stale: .venv/bin/python -m hactl.minion.config_schema > docs/minion-yaml.md"
    )
