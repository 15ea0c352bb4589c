"""The lab's Galera profile string: a shipped profile, optionally with options a benchmark tries."""

from __future__ import annotations

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
