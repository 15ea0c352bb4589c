"""The lab refuses a folder mysqld cannot reach, saying which parent and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from hactl.lab.net import LabError
from hactl.lab.preflight import reachable_by_daemons


def test_a_0700_parent_is_named_with_the_fix(tmp_path: Path) -> None:
    """mktemp -d's 0700 folder as a parent: a LabError naming it and chmod o+x, not InnoDB's
    bare Permission denied; a searchable parent passes."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(LabError) as err:
        reachable_by_daemons(closed / "lab")
    assert str(closed) in str(err.value) and "chmod o+x" in str(err.value)
    reachable_by_daemons(Path("/tmp/hactl-no-such-folder/lab"))  # /tmp is searchable
