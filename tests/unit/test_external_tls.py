"""TLS on the external VIP: the certificate file is PEM and nothing else on both sides (the
master's renderer, the minion's policy), the switch and the per-service redirect render as
HAProxy expects, and the service beacon's https endpoints are checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hactl.errors import ConfigError, HactlError
from hactl.master.states.compile import compile_tree
from hactl.master.states.render import pem_value
from hactl.master.states.tree import load_tree
from hactl.minion.beacons.service import endpoints
from hactl.minion.executors.policy import ContentPolicy, PolicyViolation, check_content, format_of
from hactl.minion.executors.policy import pem as pem_policy
from tests.support.shipped_tree import shipped_tree

PEM = (Path(__file__).parent / "golden" / "external-tls.pem").read_text(encoding="utf-8")
CA = Path(__file__).parent / "golden" / "external-tls-ca.crt"
CFG, CERT = "/etc/haproxy/haproxy.cfg", "/etc/haproxy/certs/external.pem"


@pytest.fixture
def tree_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped tree, with every secret it needs in the environment."""
    return shipped_tree(tmp_path, monkeypatch)


def _files(root: Path, extra: str = "") -> dict[str, str]:
    pillars = []
    if extra:
        (root.parent / "extra.yaml").write_text(extra)
        pillars.append(root.parent / "extra.yaml")
    files: dict[str, str] = compile_tree(load_tree(root, pillars), ["ctl1"])["ctl1"].files()
    return files


def test_the_certificate_file_is_the_pillars_pem_and_every_public_http_bind_uses_it(
    tree_dir: Path,
) -> None:
    """Shipped default: the PEM written 0600 before the config, TLS on each public http bind,
    horizon's plain port redirecting, the tcp pass-through and the internal VIP untouched."""
    files = _files(tree_dir)
    assert files[CERT] == PEM.strip() + "\n"
    cfg = files[CFG]
    assert cfg.count(f"ssl crt {CERT}") == 9  # the seeds' public http APIs
    assert "bind 203.0.113.100:5000 ssl crt" in cfg and "bind 192.168.47.100:5000\n" in cfg
    assert "bind 203.0.113.100:80\n    mode http\n    http-request redirect scheme https" in cfg
    assert "bind 203.0.113.100:443\n" in cfg  # horizon_tls: TLS passes through
    assert "ssl-min-ver TLSv1.2" in cfg
    plan = compile_tree(load_tree(tree_dir), ["ctl1"])["ctl1"]
    ids = [r.id for r in plan.resources]
    assert ids.index("haproxy_external_pem") < ids.index("haproxy_cfg")
    pem_res = next(r for r in plan.resources if r.id == "haproxy_external_pem")
    assert pem_res.args["mode"] == "0600"


def test_tls_off_serves_plain_http_and_writes_no_certificate(tree_dir: Path) -> None:
    """external_tls: !replace {enabled: false} -- no secret needed, no crt, no redirect."""
    files = _files(tree_dir, "haproxy:\n  external_tls: !replace {enabled: false}\n")
    assert CERT not in files
    assert "ssl" not in files[CFG] and "redirect" not in files[CFG]
    assert "bind 203.0.113.100:5000\n" in files[CFG]


@pytest.mark.parametrize(
    ("service", "match"),
    [
        ("{name: x, port: 81, external: true, external_tls: maybe}", "external_tls"),
        ("{name: x, port: 81, external: true, mode: tcp, external_tls: redirect}", "http mode"),
    ],
)
def test_a_bad_external_tls_setting_names_the_service(
    tree_dir: Path, service: str, match: str
) -> None:
    """A service's external_tls is 'tls' or 'redirect' (http only); anything else is an error
    at compile time, with the service's name."""
    with pytest.raises(HactlError, match=match):
        _files(tree_dir, f"services:\n  - {service}\n")


@pytest.mark.parametrize(
    "value",
    [
        "not a certificate",
        PEM + "global\n    lua-load /tmp/x.lua\n",
        PEM.replace("-----END CERTIFICATE-----", "-----END PRIVATE KEY-----", 1),
    ],
    ids=["text", "directive after the blocks", "mismatched END"],
)
def test_a_pem_value_is_blocks_only(value: str) -> None:
    """The renderer refuses anything in a .pem template's value but whole PEM blocks."""
    with pytest.raises(ValueError, match="not PEM"):
        pem_value(value)
    assert pem_value(PEM.replace("\n", "\r\n")) == PEM.strip() + "\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("frontend f\n    bind :80\n", "only BEGIN/END"),
        ("-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n", "not a key or certificate"),
        ("-----BEGIN CERTIFICATE-----\nAA AA\n-----END CERTIFICATE-----\n", "not base64"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n", "no END"),
        ("\n\n", "no block"),
        (PEM + "lua-load /tmp/x.lua\n", "only BEGIN/END"),
    ],
)
def test_the_minion_reads_a_pem_file_as_pem_only(text: str, match: str) -> None:
    """A *.pem file -- even under /etc/haproxy -- is read as key material: any line that is
    not part of a PEM block is refused."""
    assert format_of(ContentPolicy(), CERT, None) == "pem"
    with pytest.raises(PolicyViolation, match=match):
        check_content(text, ContentPolicy(), path=CERT)
    check_content(PEM, ContentPolicy(), path=CERT)
    pem_policy.check(PEM)


def test_https_endpoints_are_checked_when_minion_yaml_loads(tmp_path: Path) -> None:
    """Each endpoint is {name, url[, ca]} with a known scheme; an https one's CA file is
    loaded once at start (a missing one is an error then, not a down service later)."""
    good = {
        "ca": str(CA),
        "endpoints": [
            {"name": "ks", "url": "https://203.0.113.100:5000/"},
            {"name": "nova", "url": "https://203.0.113.100:8774/", "ca": str(CA)},
            {"name": "plain", "url": "http://127.0.0.1:5000/"},
        ],
    }
    urls, tls = endpoints(good)
    assert set(urls) == {"ks", "nova", "plain"} and set(tls) == {"ks", "nova"}
    assert tls["ks"] is tls["nova"]  # one context per CA file
    bad = [
        {"ca": "", "endpoints": [{"name": "x", "url": "ftp://h:1/"}]},
        {"ca": "", "endpoints": [{"name": "x"}]},
        {"ca": "", "endpoints": [{"name": "x", "url": "tcp://h:1", "extra": 1}]},
        {"ca": str(tmp_path / "none.crt"), "endpoints": [{"name": "x", "url": "https://h:1/"}]},
        {"ca": "", "endpoints": [{"name": "x", "url": "tcp://h:1"}] * 2},
    ]
    for options in bad:
        with pytest.raises(ConfigError):
            endpoints(options)


INTERNAL = """internal_tls:
  enabled: true
  pem: {secret: {env: HACTL_INTERNAL_TLS_PEM}}
  ca: {secret: {env: HACTL_INTERNAL_TLS_CA}}
"""


def test_internal_tls_renders_galera_rabbitmq_haproxy_and_the_clients(
    tree_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """internal_tls on: Galera offers TLS with the pillar's certificate, RabbitMQ listens for
    AMQPS (HAProxy passes 5671 through on the internal VIP), the clients use it with the CA;
    the key files are the daemons' group's only."""
    monkeypatch.setenv("HACTL_INTERNAL_TLS_PEM", PEM)
    monkeypatch.setenv("HACTL_INTERNAL_TLS_CA", CA.read_text(encoding="utf-8"))
    (tree_dir.parent / "extra.yaml").write_text(INTERNAL)
    plan = compile_tree(load_tree(tree_dir, [tree_dir.parent / "extra.yaml"]), ["ctl1"])["ctl1"]
    files = plan.files()
    res = {r.id: r for r in plan.resources}
    galera = files["/etc/mysql/mariadb.conf.d/60-galera.cnf"]
    assert "ssl_cert=/etc/mysql/tls/server.pem\nssl_key=/etc/mysql/tls/server.pem\n" in galera
    assert "ssl_ca=/etc/mysql/tls/ca.pem\n" in galera and "require_secure_transport" not in galera
    rabbit = files["/etc/rabbitmq/rabbitmq.conf"]
    assert "listeners.ssl.default = 192.168.47.11:5671\n" in rabbit
    assert "ssl_options.keyfile = /etc/rabbitmq/tls/server.pem\n" in rabbit
    cfg = files[CFG]
    assert "listen rabbitmq_tls\n    bind 192.168.47.100:5671\n" in cfg
    assert "server ctl2 192.168.47.12:5671\n" in cfg
    clients = files["/etc/hactl/openstack-clients.conf"]
    assert "@192.168.47.11:5671," in clients and ":5672" not in clients
    assert "ssl = true\nssl_ca_file = /etc/rabbitmq/tls/ca.pem\n" in clients
    assert "?ssl_ca=/etc/mysql/tls/ca.pem" in clients
    for rid, group in (("galera_tls_pem", "mysql"), ("rabbitmq_tls_pem", "rabbitmq")):
        assert (res[rid].args["mode"], res[rid].args["group"]) == ("0640", group)
        assert files[res[rid].args["path"]] == PEM.strip() + "\n"
    ids = list(res)
    assert ids.index("galera_tls_pem") < ids.index("galera_cnf")
    assert "rabbitmq_tls_pem" in res["rabbitmq_service"].watch
