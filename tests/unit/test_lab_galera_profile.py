"""The lab's pillar: the Galera profile string (a shipped profile, optionally with options a
benchmark tries), and the whole pillar as YAML over the shipped keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from hactl.lab.config import galera_provider

pytestmark = pytest.mark.unit


def test_a_profile_with_options_on_top() -> None:
    """`lan:k=v,k2=v2` is the lan profile plus those provider options; a bare name has none."""
    assert galera_provider("default") == ("default", {})
    assert galera_provider("lan:evs.suspect_timeout=PT0.6S, evs.inactive_timeout=PT5S") == (
        "lan",
        {"evs.suspect_timeout": "PT0.6S", "evs.inactive_timeout": "PT5S"},
    )


@pytest.mark.parametrize("bad", ["lan:evs.suspect_timeout", "lan:=PT1S", "lan:a=b;c=d", "lan:a={}"])
def test_a_malformed_option_is_refused(bad: str) -> None:
    """No key, no value, or a character that would change the rendered line: refused."""
    with pytest.raises(ValueError, match="bad galera provider option"):
        galera_provider(bad)


def test_the_lab_pillar_is_a_mapping_of_the_shipped_keys(tmp_path: Path) -> None:
    """The lab pillar parses, and its top-level keys are ones the shipped pillar has (a
    line at the wrong indent would make YAML fail only when a lab is built)."""
    import yaml

    from hactl.data import states_dir
    from hactl.lab.config import pillar
    from hactl.lab.net import LabNet

    net = LabNet("hx", "10.99.9", ("ctl1", "ctl2", "ctl3"))
    text = pillar(net, tmp_path, {"haproxy", "keepalived", "galera", "rabbitmq"})
    doc = yaml.load(text.replace("!replace", ""), Loader=yaml.SafeLoader)
    shipped = yaml.safe_load((states_dir() / "pillar" / "site.yaml").read_text())
    assert isinstance(doc, dict) and set(doc) - set(shipped) <= {"singletons"}, set(doc)
    assert doc["internal_tls"]["enabled"] is True and doc["clients"] == {"tls": False}
    assert doc["haproxy"]["check"] == {
        "inter": "1s",
        "fastinter": "250ms",
        "downinter": "500ms",
        "fall": 2,
        "rise": 2,
    }
