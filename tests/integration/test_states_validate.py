"""The real daemons accept every rendered config of the shipped tree (3 controllers)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hactl.auth.store import server_pem
from hactl.master.states.compile import compile_tree
from hactl.master.states.tree import load_tree
from tests.support.keystone_keys import ENV as KEYSTONE_ENV

STATES = Path(__file__).resolve().parents[2] / "states"
NODES = ("ctl1", "ctl2", "ctl3")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Every node's haproxy.cfg and keepalived.conf, written to a temp dir."""
    os.environ["HACTL_HAPROXY_STATS_PASSWORD"] = "validate-secret"
    os.environ["HACTL_RABBITMQ_MONITOR_PASSWORD"] = "validate-mon"
    os.environ["HACTL_RABBITMQ_OPENSTACK_PASSWORD"] = "validate-os"
    os.environ["HACTL_RABBITMQ_COOKIE"] = "validatecookie0123"
    os.environ.update(KEYSTONE_ENV)
    # the external VIP's certificate: a fresh one, where HAProxy's check can read it
    root = tmp_path_factory.mktemp("rendered")
    os.environ["HACTL_HAPROXY_EXTERNAL_PEM"] = server_pem(["203.0.113.100"])[1].decode()
    # and TLS inside (pillar internal_tls): Galera's and RabbitMQ's clients
    ca, internal = server_pem(["192.168.47.100", "192.168.47.11", "192.168.47.12", "192.168.47.13"])
    os.environ["HACTL_INTERNAL_TLS_PEM"], os.environ["HACTL_INTERNAL_TLS_CA"] = (
        internal.decode(),
        ca.decode(),
    )
    pem = root / "external.pem"
    (root / "paths.yaml").write_text(
        f"paths: {{haproxy_external_pem: {pem}}}\n"
        "internal_tls: {enabled: true, pem: {secret: {env: HACTL_INTERNAL_TLS_PEM}},\n"
        "               ca: {secret: {env: HACTL_INTERNAL_TLS_CA}}}\n"
    )
    try:
        tree = load_tree(STATES, [root / "paths.yaml"])
    finally:
        for var in (
            "HACTL_HAPROXY_STATS_PASSWORD",
            "HACTL_RABBITMQ_MONITOR_PASSWORD",
            "HACTL_RABBITMQ_OPENSTACK_PASSWORD",
            "HACTL_RABBITMQ_COOKIE",
            "HACTL_HAPROXY_EXTERNAL_PEM",
            "HACTL_INTERNAL_TLS_PEM",
            "HACTL_INTERNAL_TLS_CA",
            *KEYSTONE_ENV,
        ):
            del os.environ[var]
    out: dict[str, dict[str, Path]] = {}
    for node, plan in compile_tree(tree, list(NODES)).items():
        files = plan.files()
        out[node] = {}
        for name, path in (
            ("haproxy", "/etc/haproxy/haproxy.cfg"),
            ("keepalived", "/etc/keepalived/keepalived.conf"),
            ("galera", "/etc/mysql/mariadb.conf.d/60-galera.cnf"),
        ):
            dest = root / node / Path(path).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(files[path])
            out[node][name] = dest
        pem.write_text(files[str(pem)])  # the same for every node
    return out


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    """A namespace that has the interfaces the shipped pillar names (eth0, eth1), no address."""
    if os.geteuid() != 0:
        pytest.skip("keepalived -t needs the VRRP interfaces: a network namespace (root)")
    name = f"hactl-val-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        for i in (0, 1):
            subprocess.run(
                [
                    "ip",
                    "-n",
                    name,
                    "link",
                    "add",
                    f"eth{i}",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    f"p{i}",
                ],
                check=True,
                timeout=10,
            )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)


@pytest.mark.parametrize("node", NODES)
def test_haproxy_accepts_rendered_config(rendered: dict[str, dict[str, Path]], node: str) -> None:
    """`haproxy -c -f` says the rendered haproxy.cfg is valid."""
    res = subprocess.run(
        ["haproxy", "-c", "-f", str(rendered[node]["haproxy"])],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 0, res.stderr + res.stdout
    assert "Configuration file is valid" in res.stdout
    assert "[ALERT]" not in res.stderr


@pytest.mark.parametrize("node", NODES)
def test_keepalived_accepts_rendered_config(
    rendered: dict[str, dict[str, Path]], netns: str, node: str
) -> None:
    """`keepalived -t -f` (inside a namespace with eth0/eth1) exits 0 with no warning."""
    conf = str(rendered[node]["keepalived"])
    res = subprocess.run(
        ["ip", "netns", "exec", netns, "keepalived", "-t", "-l", "-f", conf],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 0, res.stderr + res.stdout
    assert "WARNING" not in res.stderr + res.stdout


@pytest.mark.parametrize("node", NODES)
def test_mariadbd_accepts_the_rendered_galera_config(
    rendered: dict[str, dict[str, Path]], node: str
) -> None:
    """`mariadbd --help --verbose` (which refuses an unknown option) reads the rendered
    galera.cnf, TLS included, and takes its certificate settings."""
    res = subprocess.run(
        [
            "/usr/sbin/mariadbd",
            f"--defaults-file={rendered[node]['galera']}",
            "--help",
            "--verbose",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    values = dict(
        line.split(None, 1) for line in res.stdout.splitlines() if line.startswith("ssl-")
    )
    assert values["ssl-cert"].strip() == "/etc/mysql/tls/server.pem"
    assert values["ssl-key"].strip() == "/etc/mysql/tls/server.pem"
    assert values["ssl-ca"].strip() == "/etc/mysql/tls/ca.pem"
