"""How the lab reads docs/deploy.md's blocks: the guide's addresses made the lab's, nothing
else touched (hactl/lab/deploydoc.py)."""

from __future__ import annotations

import pytest

from hactl.lab.deploydoc import DEPLOY_MD, addresses, block, localize
from hactl.lab.net import LabError, LabNet

NET = LabNet("t", "10.99.4", ("ctl1", "ctl2"))


def test_the_guides_addresses_become_the_labs_inside_its_subnet() -> None:
    """Controllers 10.0.0.11-13 -> the lab's .11-.13 (even the third of a two-node lab stays
    in the lab subnet), the VIPs -> the lab's VIPs."""
    assert addresses(NET) == {
        "10.0.0.11": "10.99.4.11",
        "10.0.0.12": "10.99.4.12",
        "10.0.0.13": "10.99.4.13",
        "10.0.0.10": "10.99.4.100",
        "203.0.113.100": "10.99.4.150",
    }


def test_only_whole_addresses_are_replaced() -> None:
    """10.0.0.11 is replaced in a URL and an option, never inside 10.0.0.110 or 110.0.0.11."""
    got = localize(
        "nats://10.0.0.11:4222 --host 10.0.0.13 10.0.0.110 110.0.0.11 10.0.0.10/24",
        addresses(NET),
    )
    assert got == "nats://10.99.4.11:4222 --host 10.99.4.13 10.0.0.110 110.0.0.11 10.99.4.100/24"


def test_every_block_the_lab_runs_is_in_the_guide() -> None:
    """The blocks the lab's bring-up runs exist in docs/deploy.md; a missing one is a
    LabError naming it."""
    assert DEPLOY_MD.name == "deploy.md"
    for name in ("auth", "nats", "secrets", "first-apply"):
        assert block(name).strip()
    with pytest.raises(LabError, match="no-such-step"):
        block("no-such-step")
