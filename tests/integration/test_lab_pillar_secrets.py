"""The lab pillar's secrets come from the lab's files even when the site's variables are set
in the environment (the site's spec names both; without ``!replace`` the variable won)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hactl.lab.config import pillar, site_etc
from hactl.lab.deploydoc import run as run_block
from hactl.lab.net import LabNet
from hactl.master.states.tree import load_tree
from tests.support.keystone_keys import ENV as KEYSTONE_ENV

STATES = Path(__file__).resolve().parents[2] / "states"


def test_the_lab_files_win_over_the_sites_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every secret the lab gives as a file is read from that file, whatever HACTL_* says."""
    from hactl.auth.store import server_pem

    lab = tmp_path / "lab"
    etc = site_etc(lab)
    run_block("secrets", {"HACTL_ETC": str(etc)})
    net = LabNet("t", "10.99.9", ("ctl1", "ctl2", "ctl3"))
    for name, hosts in (("external", [net.vip(1)]), ("internal", [net.vip(0)])):
        ca, pem = server_pem(hosts)
        (lab / f"{name}.pem").write_bytes(pem)
    (lab / "internal-ca.crt").write_bytes(ca)
    (lab / "lab-pillar.yaml").write_text(pillar(net, lab, {"galera", "rabbitmq", "keystone"}))
    for key, value in KEYSTONE_ENV.items():
        monkeypatch.setenv(key, value)
    for var in ("HAPROXY_STATS_PASSWORD", "RABBITMQ_COOKIE", "HAPROXY_EXTERNAL_PEM"):
        monkeypatch.setenv(f"HACTL_{var}", "from-the-environment")
    tree = load_tree(shutil.copytree(STATES, tmp_path / "states"), [lab / "lab-pillar.yaml"])
    ks = tree.pillar["keystone"]
    assert ks["admin_password"] == (etc / "keystone-admin.pw").read_text().strip()
    assert ks["database"]["password"] == (etc / "keystone-db.pw").read_text().strip()
    assert ks["fernet_keys"] == (etc / "keystone-fernet-keys").read_text().strip()
    assert (
        tree.pillar["haproxy"]["stats"]["password"]
        == (etc / "haproxy-stats.pw").read_text().strip()
    )
    assert tree.pillar["rabbitmq"]["cookie"] == (etc / "rabbitmq-cookie").read_text().strip()
    assert "BEGIN" in tree.pillar["haproxy"]["external_tls"]["pem"]
