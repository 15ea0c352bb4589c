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


def test_deploy_md_auth_block_makes_the_guides_identities_for_the_labs_addresses(
    tmp_path: Path,
) -> None:
    """docs/deploy.md's ``lab: auth`` block, as the lab runs it (its addresses for the
    guide's): the three controllers, the master and the admin alice, keys 0600, and one server
    certificate naming the lab's controller addresses, not the guide's."""
    from cryptography import x509

    from hactl.auth.store import AuthDir
    from hactl.lab import deploydoc
    from hactl.lab.net import LabNet

    net = LabNet("t", "10.99.9", ("ctl1", "ctl2", "ctl3"))
    auth = tmp_path / "auth"
    deploydoc.run("auth", {"HACTL_AUTH": str(auth)}, net=net)
    kinds = {e.identity.name: e.identity.kind for e in AuthDir(auth).entries()}
    assert kinds == {
        "ctl1": "minion",
        "ctl2": "minion",
        "ctl3": "minion",
        "master": "master",
        "alice": "admin",
    }
    assert {p.stat().st_mode & 0o777 for p in (auth / "creds").iterdir()} == {0o600}
    certs = [p for p in auth.rglob("*.crt") if p.name != "ca.crt"]
    assert certs, sorted(p.name for p in auth.rglob("*"))
    cert = x509.load_pem_x509_certificate(certs[0].read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = sorted(str(a) for a in san.get_values_for_type(x509.IPAddress))
    assert ips == ["10.99.9.11", "10.99.9.12", "10.99.9.13"], ips


def _yaml_block(first_key: str) -> str:
    import re

    from hactl.lab.deploydoc import DEPLOY_MD

    for found in re.findall(r"```yaml\n(.*?)\n```", DEPLOY_MD.read_text(), re.DOTALL):
        if found.startswith(first_key):
            return str(found)
    raise AssertionError(f"docs/deploy.md has no yaml block starting {first_key!r}")


def test_deploy_md_minion_and_master_files_load_as_written(tmp_path: Path) -> None:
    """docs/deploy.md's minion.yaml (its one secret file put where the guide says, here under
    tmp) and master.yaml load through the daemons' own validation: every key the guide shows
    is one the minion and the master accept, and the rabbitmq beacon names its service."""
    from hactl.master.config import parse_master_config
    from hactl.minion.config import parse_config

    pw = tmp_path / "rabbitmq-monitor.pw"
    pw.write_text("secret\n")
    text = _yaml_block("id: ctl1").replace("/etc/hactl/rabbitmq-monitor.pw", str(pw))
    cfg = parse_config(text, "docs/deploy.md")
    assert cfg.id == "ctl1"
    assert {"haproxy", "keepalived", "rabbitmq-server", "keystone"} <= set(cfg.services)
    # the paused-broker repair needs the broker's pid file and the service that runs it
    rabbit = dict(cfg.beacons["rabbitmq"])
    assert rabbit["pidfile"] and rabbit["service"] in cfg.services, rabbit
    master = parse_master_config(_yaml_block("reactors:"), "docs/deploy.md")
    assert master["states"] == "/etc/hactl/states" and master["lost_after"]


def test_deploy_md_nats_block_writes_each_controllers_whole_server_config(tmp_path: Path) -> None:
    """docs/deploy.md's ``lab: nats`` block, as the lab runs it for one controller: a 0600
    config listening on that controller's address, routing to every peer with the route
    password, the users inline, TLS from the folder the controller reads, and the files
    it names beside it."""
    from hactl.auth.store import AuthDir
    from hactl.lab import deploydoc
    from hactl.lab.net import LabNet

    net = LabNet("t", "10.99.9", ("ctl1", "ctl2", "ctl3"))
    auth = tmp_path / "auth"
    deploydoc.run("auth", {"HACTL_AUTH": str(auth)}, net=net)
    etc = tmp_path / "ctl2-nats"
    deploydoc.run(
        "nats",
        {
            "ME": "10.99.9.12",
            "NAME": "ctl2",
            "PEERS": "10.99.9.11 10.99.9.12 10.99.9.13",
            "HACTL_AUTH": str(auth),
            "NATS_ETC": str(etc),
            "NATS_AT": str(etc),
            "NATS_STORE": str(etc / "jetstream"),
        },
        net=net,
    )
    conf = etc / "nats-server.conf"
    assert conf.stat().st_mode & 0o777 == 0o600
    text = conf.read_text()
    assert 'listen: "10.99.9.12:4222"' in text and 'server_name: "ctl2"' in text
    assert all(f"@10.99.9.1{i}:6222" in text for i in (1, 2, 3))
    assert f'cert_file: "{etc}/server.crt"' in text
    for ident in AuthDir(auth).entries():
        assert ident.identity.public_key in text
    assert {p.name for p in etc.iterdir()} == {
        "nats-server.conf",
        "server.crt",
        "server.key",
        "ca.crt",
    }
