"""docs/deploy.md's steps the lab runs as written (hactl/lab/deploydoc.py), run here alone."""

from __future__ import annotations

from pathlib import Path


def test_deploy_md_secrets_block_makes_the_secrets_the_pillar_reads(tmp_path: Path) -> None:
    """docs/deploy.md's block marked ``lab: secrets`` (the one the lab runs) makes the files
    the shipped pillar names, 0600, in ``HACTL_ETC``: the passwords and cookie, and a fernet
    repository the keystone.fernet_keys resource accepts."""
    from hactl.lab import deploydoc

    etc = tmp_path / "etc-hactl"
    deploydoc.run("secrets", {"HACTL_ETC": str(etc)})
    made = {p.name: p.stat().st_mode & 0o777 for p in etc.iterdir()}
    names = (
        "haproxy-stats.pw",
        "rabbitmq-monitor.pw",
        "rabbitmq-openstack.pw",
        "rabbitmq-cookie",
        "keystone-db.pw",
        "keystone-admin.pw",
    )
    assert made == dict.fromkeys((*names, "keystone-fernet-keys"), 0o600)
    assert all(len((etc / n).read_text().strip()) == 40 for n in names)
    from hactl.minion.executors.keystone import parse_keys

    keys = parse_keys((etc / "keystone-fernet-keys").read_text())
    assert sorted(keys) == [0, 1] and keys[0] != keys[1]
