"""The permission-table walk (hactl/auth/walk.py): what each identity may store, as printed in
docs/security.md (the integration walk proves every refused cell on a real server)."""

from __future__ import annotations

from pathlib import Path

from hactl.auth import walk

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _own(kind: str) -> set[str]:
    name = dict(walk.WALKED)[kind]
    return {
        t.subject for t in walk.TARGETS if walk.cell(kind, name, "U" + "C" * 55, t, "U" + "D" * 55)
    }


def test_the_docs_print_the_walk() -> None:
    """docs/security.md carries the table the permission table gives today."""
    assert walk.table() in DOC.read_text(), (
        "stale: .venv/bin/python -m hactl.auth.walk, then paste into docs/security.md"
    )


def test_a_minion_stores_only_its_own_events_and_returns() -> None:
    """Of every captured subject, a minion may write its own beacon and its own job return."""
    assert _own("minion") == {"hactl.beacon.ctl1.vrrp", "hactl.job.walk.ret.ctl1"}


def test_an_operator_stores_only_events_and_its_own_audit() -> None:
    """An operator: operator events and its own audit records; no KV, no trail, no job."""
    assert _own("operator") == {"hactl.event.alert.drill", f"hactl.audit.{walk.OWN_KEY}.fire"}


def test_nobody_writes_another_persons_audit_or_a_nodes_beacon_but_the_node() -> None:
    """Another person's audit records and another node's beacon are refused to everyone."""
    for kind, _ in walk.WALKED:
        own = _own(kind)
        assert f"hactl.audit.{walk.OTHER_KEY}.fire" not in own
        assert "hactl.beacon.ctl2.vrrp" not in own
        assert "hactl.job.walk.ret.ctl2" not in own
