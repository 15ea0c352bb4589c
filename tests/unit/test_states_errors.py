"""A bad state tree gives one clear error naming file and line; lint catches the seed pitfalls."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hactl.errors import ConfigError, StateError
from hactl.master.states.compile import Resource, compile_tree, order
from hactl.master.states.tree import load_tree, redact
from tests.support.keystone_keys import ENV as KEYSTONE_ENV

SHIPPED = Path(__file__).resolve().parents[2] / "states"


@pytest.fixture
def tree_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped tree to break."""
    monkeypatch.setenv("HACTL_HAPROXY_STATS_PASSWORD", "pw-in-test")
    monkeypatch.setenv("HACTL_RABBITMQ_MONITOR_PASSWORD", "mon-in-test")
    monkeypatch.setenv("HACTL_RABBITMQ_OPENSTACK_PASSWORD", "os-in-test")
    monkeypatch.setenv("HACTL_RABBITMQ_COOKIE", "cookieintest0123")
    for key, value in KEYSTONE_ENV.items():
        monkeypatch.setenv(key, value)
    pem = Path(__file__).parent / "golden" / "external-tls.pem"
    monkeypatch.setenv("HACTL_HAPROXY_EXTERNAL_PEM", pem.read_text(encoding="utf-8"))
    dest = tmp_path / "states"
    shutil.copytree(SHIPPED, dest)
    return dest


def _compile(root: Path) -> None:
    tree = load_tree(root)
    compile_tree(tree, sorted(tree.nodes))


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_yaml_syntax_error_names_file_and_line(tree_dir: Path) -> None:
    """A broken init.yaml is reported at its file and line."""
    _replace(tree_dir / "galera/init.yaml", '    mode: "0644"', '    mode: ["0644"')
    with pytest.raises(StateError) as err:
        _compile(tree_dir)
    assert err.value.file == str(tree_dir / "galera/init.yaml")
    assert err.value.line == 10
    assert "YAML syntax" in str(err.value)


def test_unknown_resource_type(tree_dir: Path) -> None:
    """An unknown resource type names the resource, the file, the line and the known types."""
    _replace(tree_dir / "galera/init.yaml", "  file.managed:", "  file.manged:")
    with pytest.raises(StateError) as err:
        _compile(tree_dir)
    assert (err.value.state, err.value.line) == ("galera_cnf", 6)
    assert "unknown resource type 'file.manged'" in str(err.value)
    assert "file.managed" in str(err.value)


def test_missing_pillar_key_names_template_line(tree_dir: Path) -> None:
    """A template using a pillar key that is not there fails at the template's line."""
    _replace(tree_dir / "pillar/site.yaml", "  sst_method: rsync\n", "")
    with pytest.raises(StateError) as err:
        _compile(tree_dir)
    assert err.value.file == str(tree_dir / "galera/galera.cnf.j2")
    assert err.value.line == 19  # wsrep_sst_method={{ g.sst_method }}
    assert "sst_method" in str(err.value)


def test_requisite_cycle(tree_dir: Path) -> None:
    """require/watch loops are refused with the cycle spelled out."""
    _replace(
        tree_dir / "sysctl/init.yaml",
        "    value: 1\n",
        "    value: 1\n    require: [haproxy_cfg]\n",
    )
    with pytest.raises(StateError) as err:
        _compile(tree_dir)
    assert "requisite cycle: haproxy_cfg -> ip_nonlocal_bind -> haproxy_cfg" in str(err.value)
    assert err.value.file is not None and err.value.line is not None


def test_unknown_requisite_and_bad_argument(tree_dir: Path) -> None:
    """A requisite that is no resource, and a wrong argument type, are both named."""
    _replace(
        tree_dir / "galera/init.yaml",
        "    makedirs: true",
        "    makedirs: true\n    require: [nope]",
    )
    with pytest.raises(StateError, match="requisite 'nope' is not a resource"):
        _compile(tree_dir)


def test_wrong_argument_type(tree_dir: Path) -> None:
    """mode must be a quoted octal string, not a YAML integer."""
    _replace(tree_dir / "galera/init.yaml", '    mode: "0644"', "    mode: 644")
    with pytest.raises(StateError, match="mode must be str, got int"):
        _compile(tree_dir)


def test_missing_secret(tree_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret that is neither in the environment nor in its file is named with its line."""
    monkeypatch.delenv("HACTL_HAPROXY_STATS_PASSWORD")
    with pytest.raises(ConfigError) as err:
        load_tree(tree_dir)
    lines = (tree_dir / "pillar/site.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(lines, 1) if "HACTL_HAPROXY_STATS_PASSWORD" in t)
    assert err.value.line == line and "haproxy.stats.password" in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("priority: 100,", "priority: 150,", "priority 150 of ctl2 is also ctl1's"),
        ("check_weight: 110", "check_weight: 10", "must exceed the priority spread 100"),
        ("virtual_router_id: 52", "virtual_router_id: 51", "virtual_router_id 51 is also used"),
        (
            "{name: glance_registry, port: 9191}",
            "{name: glance_registry, port: 9292}",
            "192.168.47.100:9292 is already bound by service glance_api",
        ),
        (
            "{name: novnc, port: 6080, external: true}",
            "{name: novnc, port: 6080, role: vnc}",
            "service novnc has no backends",
        ),
        (
            "address: 203.0.113.100,",
            "address: '2001:db8::100',",
            "vips.external: 2001:db8::100 is IPv6: hactl runs IPv4 VIPs and nodes only",
        ),
        ("address: 192.168.47.100,", "address: vip.example,", "'vip.example' is not an IP"),
        ("ctl3: {address: 192.168.47.13,", "ctl3: {address: '2001:db8::13',", "nodes.ctl3: 2001"),
    ],
)
def test_lint(tree_dir: Path, old: str, new: str, expect: str) -> None:
    """The seeds' pitfalls are compile errors naming the pillar line."""
    _replace(tree_dir / "pillar/site.yaml", old, new)
    with pytest.raises(StateError) as err:
        _compile(tree_dir)
    assert expect in str(err.value)
    assert err.value.file == str(tree_dir / "pillar/site.yaml") and err.value.line


def test_order_keeps_declaration_order_without_requisites() -> None:
    """Declaration order, except that a resource waits for its requisites (Salt's order)."""
    rs = [
        Resource("c", "t", "s", {}, require=("a",)),
        Resource("a", "t", "s", {}),
        Resource("b", "t", "s", {}),
    ]
    assert [r.id for r in order(rs)] == ["a", "c", "b"]


def test_redact_longest_first() -> None:
    """Secrets are masked, the longer one first when one contains the other."""
    assert (
        redact("auth admin:s3cret-long s3cret", {"s3cret", "s3cret-long"}) == "auth admin:*** ***"
    )


def test_a_world_readable_file_with_a_secret_is_refused(tree_dir: Path) -> None:
    """haproxy.cfg carries the stats password: mode 0644 is refused at compile, naming it."""
    _replace(tree_dir / "haproxy/init.yaml", 'mode: "0640"', 'mode: "0644"')
    with pytest.raises(StateError, match="holds a secret") as err:
        _compile(tree_dir)
    assert err.value.file is not None and err.value.file.endswith("haproxy/init.yaml")


def test_each_minion_is_sent_only_its_own_secrets(tree_dir: Path) -> None:
    """A plan's secret list holds what its files carry, and the password hash derived from it;
    a secret of many lines (the external VIP's PEM chain and key) is one of them too."""
    import json

    from hactl.master.states.render import rabbitmq_password_hash

    tree = load_tree(tree_dir)
    plans = compile_tree(tree, sorted(tree.nodes))
    pem = (Path(__file__).parent / "golden" / "external-tls.pem").read_text(encoding="utf-8")
    for plan in plans.values():
        text = json.dumps([r.wire() for r in plan.resources], default=str)
        assert all(json.dumps(s)[1:-1] in text for s in plan.secrets)
        assert rabbitmq_password_hash("os-in-test", "openstack") in plan.secrets
        assert pem in plan.secrets, "the PEM is masked in what the minion returns"


def test_a_setuid_mode_is_refused_at_compile(tree_dir: Path) -> None:
    """file.managed with mode 4755 is refused with its file and line, before any push."""
    _replace(tree_dir / "galera/init.yaml", '    mode: "0644"', '    mode: "4755"')
    with pytest.raises(StateError, match="setuid"):
        _compile(tree_dir)


def test_a_pillar_value_cannot_add_resources(tree_dir: Path) -> None:
    """A path with a newline and a YAML mapping in it stays one string value: it adds no
    resource and no key (pillar values reach init.yaml as YAML values, not text)."""
    evil = (
        '/etc/mysql/x.cnf\\n  mode: \\"4755\\"\\nevil:\\n  sysctl.present: '
        '{name: kernel.core_pattern, value: \\"|/tmp/x\\"}'
    )
    _replace(
        tree_dir / "pillar/site.yaml",
        "  galera_cnf: /etc/mysql/mariadb.conf.d/60-galera.cnf",
        f'  galera_cnf: "{evil}"',
    )
    tree = load_tree(tree_dir)
    plans = compile_tree(tree, sorted(tree.nodes))
    for plan in plans.values():
        ids = [r.id for r in plan.resources]
        assert "evil" not in ids
        cnf = next(r for r in plan.resources if r.id == "galera_cnf")
        assert cnf.args["path"].startswith("/etc/mysql/x.cnf\n") and cnf.args["mode"] == "0644"


@pytest.mark.parametrize(
    ("pillar_old", "pillar_new", "template"),
    [
        ("cluster_name: openstack", 'cluster_name: "openstack\\nplugin_load_add=x.so"', "galera"),
        ("maxconn: 4096", 'maxconn: "4096\\n    lua-load /x.lua"', "haproxy"),
        ("advert_int: 1", 'advert_int: "1\\n    notify_master /x"', "keepalived"),
        (
            "cluster_partition_handling: pause_minority",
            'cluster_partition_handling: "a\\u2028b"',
            "rabbitmq",
        ),
    ],
)
def test_a_pillar_line_break_cannot_add_a_directive(
    tree_dir: Path, pillar_old: str, pillar_new: str, template: str
) -> None:
    """A pillar string with a line break is refused at the template line that renders it,
    in every config format (it would add a directive)."""
    _replace(tree_dir / "pillar/site.yaml", pillar_old, pillar_new)
    with pytest.raises(StateError) as err:
        _compile(tree_dir)
    assert "line break" in str(err.value) and template in str(err.value.file)


def test_pillar_values_are_escaped_for_haproxy_and_json(tree_dir: Path) -> None:
    """HAProxy reads an escaped '#', quote or backslash back as the value; a JSON string
    with a quote stays one string (no field injected)."""
    import json

    from hactl.minion.executors.policy import haproxy

    _replace(tree_dir / "pillar/site.yaml", "    user: admin", '    user: "ad#m\\"in"')
    _replace(tree_dir / "pillar/site.yaml", "- name: openstack", '- name: \'os", "tags": "x\'')
    _replace(
        tree_dir / "pillar/site.yaml",
        "  rabbitmq_user: openstack",
        "  rabbitmq_user: hactl-monitor",
    )
    tree = load_tree(tree_dir)
    plans = compile_tree(tree, ["ctl1"])
    files = plans["ctl1"].files()
    cfg = next(v for k, v in files.items() if k.endswith("haproxy.cfg"))
    auth = next(line for line in cfg.splitlines() if "stats auth" in line)
    assert haproxy.words(1, auth)[2].startswith('ad#m"in:')
    definitions = json.loads(next(v for k, v in files.items() if k.endswith("definitions.json")))
    assert 'os", "tags": "x' in [u["name"] for u in definitions["users"]]


def test_the_clients_state_names_a_missing_broker_user(tree_dir: Path) -> None:
    """clients.rabbitmq_user must be one of rabbitmq.users: the error names the template."""
    _replace(tree_dir / "pillar/site.yaml", "  rabbitmq_user: openstack", "  rabbitmq_user: nova")
    with pytest.raises(StateError, match=r"openstack-clients.conf.j2:\d+.*'nova' is not one of"):
        compile_tree(load_tree(tree_dir), ["ctl1"])


def test_a_ca_certificate_read_from_a_secret_file_is_not_a_secret() -> None:
    """A value of PEM certificates alone (a CA) is public and may be 0644; one holding a key
    is a secret."""
    from hactl.master.states.tree import _only_certificates

    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    key = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"
    assert _only_certificates(cert) and _only_certificates(cert + cert)
    assert not _only_certificates(cert + key) and not _only_certificates("s3cret-password")
