"""The permission table as data: every identity's grants, pure (no server)."""

from __future__ import annotations

import pytest

from hactl.auth.perms import (
    REACTOR_DELIVER,
    Identity,
    inbox_prefix,
    permissions,
    render_authorization,
)
from hactl.errors import ConfigError
from hactl.minion.beacons import REGISTRY
from hactl.minion.singleton import SingletonBeacon
from hactl.minion.supervisor import SupervisorBeacon
from hactl.wire.tags import BEACON_KINDS

KEY = "U" + "A" * 55
KEY2 = "U" + "B" * 55


def test_beacon_subjects_match_the_minion_registry() -> None:
    """The permission table names exactly the beacons a minion can run (the configurable ones
    and the supervisor's and the singleton keeper's, which minion.yaml `supervision` and
    `singletons` turn on)."""
    assert set(BEACON_KINDS) == {*REGISTRY, SupervisorBeacon.name, SingletonBeacon.name}


def test_minion_grants_are_its_own_subjects_only() -> None:
    """A minion publishes only under its own id, hears only its commands and its inbox; its
    JetStream calls are direct gets of a Galera bootstrap lease and of its own and the
    cluster-wide maintenance windows (read, never write)."""
    p = permissions(Identity("minion", "ctl1", KEY))
    pub = p["publish"]["allow"]
    lease_read = "$JS.API.DIRECT.GET.KV_HACTL_LEASES.$KV.HACTL_LEASES.galera-bootstrap.>"
    maint = "$JS.API.DIRECT.GET.KV_HACTL_MAINT.$KV.HACTL_MAINT.maint."
    reads = [lease_read, f"{maint}ctl1.*", f"{maint}all.*"]
    assert [s for s in pub if s.startswith(("$JS", "$KV"))] == reads
    assert all(".ctl1." in s or s.endswith(".ctl1") for s in pub if s not in reads)
    assert not any(s.startswith("hactl.cmd") for s in pub)
    assert p["subscribe"]["allow"] == ["hactl.cmd.ctl1", f"{inbox_prefix(KEY)}.>"]
    assert p["allow_responses"] is True


def test_operator_has_no_command_and_no_consumer_api() -> None:
    """Operators: no hactl.cmd, no consumer create, no KV write, no lease read."""
    pub = permissions(Identity("operator", "alice", KEY))["publish"]["allow"]
    assert not any(s.startswith("hactl.cmd") or "CONSUMER" in s or s.startswith("$KV") for s in pub)
    assert not any("LEASES" in s for s in pub)
    assert f"hactl.audit.{KEY}.>" in pub


def test_managers_cannot_forge_minion_events_or_erase_the_audit() -> None:
    """Admin and master: no beacon/lifecycle publish, audit stream destruction denied."""
    for kind in ("admin", "master"):
        p = permissions(Identity(kind, "x", KEY))
        assert not any(
            s.startswith(("hactl.beacon", "hactl.minion.*.heartbeat", "hactl.>"))
            for s in p["publish"]["allow"]
        )
        assert "$JS.API.STREAM.PURGE.HACTL_AUDIT" in p["publish"]["deny"]
        assert "hactl.cmd.ctl1" not in p["subscribe"]["allow"]
    assert REACTOR_DELIVER in permissions(Identity("master", "m", KEY))["subscribe"]["allow"]
    assert REACTOR_DELIVER not in permissions(Identity("admin", "a", KEY))["subscribe"]["allow"]


def test_rendered_block_names_every_active_key_once() -> None:
    """render_authorization: one user per key; a duplicate name is refused."""
    text = render_authorization([Identity("minion", "ctl1", KEY), Identity("admin", "root", KEY2)])
    assert text.count("nkey:") == 2 and KEY in text and KEY2 in text
    with pytest.raises(ConfigError, match="used twice"):
        render_authorization([Identity("minion", "ctl1", KEY), Identity("admin", "ctl1", KEY2)])


@pytest.mark.parametrize(
    ("kind", "name", "key"),
    [
        ("minion", "master", KEY),
        ("root", "x", KEY),
        ("minion", "ctl1\n", KEY),
        ("minion", "ctl1", "SU" + "A" * 54),
        ("admin", "a.b", KEY),
    ],
)
def test_bad_identities_are_refused(kind: str, name: str, key: str) -> None:
    """Unknown kinds, names with dots or newlines, seeds instead of keys, a minion 'master'."""
    with pytest.raises(ConfigError):
        Identity(kind, name, key)
