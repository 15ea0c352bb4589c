"""`hactl apply` end to end: two real minions in network namespaces, the shipped state tree.

The minions run as `hactl minion` processes inside their own namespaces (so the sysctl they
set is theirs, and `keepalived -t` sees their eth0); NATS listens on the root namespace's lab
veth behind the guard route. Services are not managed here (``manage_services: false``):
this proves rendering, diffs, checks, writes and idempotence; the lab proves reloads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hactl.auth import store
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.lab.net import LabNet, down, exec_argv, up
from tests.integration.procs import HACTL, clean_env, run_cli
from tests.support.keystone_keys import ENV as KEYSTONE_ENV

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")
SHIPPED = Path(__file__).resolve().parents[2] / "states"
NODES = ("ita", "itb")


@dataclass
class Site:
    """The lab network, NATS, the minions and where their files land."""

    net: LabNet
    url: str
    root: Path
    pillar: Path
    env: dict[str, str]

    def file(self, node: str, name: str) -> Path:
        """A managed file of ``node``."""
        return self.root / node / "etc" / name

    def apply(self, *args: str, tree: Path = SHIPPED) -> subprocess.CompletedProcess[str]:
        """Run `hactl apply` against the site (bounded)."""
        return run_cli(
            [
                "--nats",
                self.url,
                "apply",
                str(tree),
                "--pillar",
                str(self.pillar),
                "--timeout",
                "30",
                *args,
            ],
            env=self.env,
            timeout=90,
        )


def _pillar(net: LabNet, root: Path) -> str:
    nodes = "\n".join(
        f"  {n}: {{address: {net.address(n)}, priority: {150 - 50 * i}, "
        "roles: [haproxy, keepalived, galera, rabbitmq, api]}"
        for i, n in enumerate(NODES)
    )
    paths = {
        "haproxy_cfg": "etc/haproxy.cfg",
        "haproxy_pid": "run/haproxy.pid",
        "haproxy_socket": "run/haproxy.sock",
        "haproxy_state": "run/haproxy.state",
        "keepalived_conf": "etc/keepalived.conf",
        "keepalived_fifo": "run/keepalived.fifo",
        "vrrp_track_dir": "run",
        "galera_cnf": "etc/galera.cnf",
        "rabbitmq_conf": "etc/rabbitmq.conf",
        "rabbitmq_definitions": "etc/definitions.json",
        "rabbitmq_enabled_plugins": "etc/enabled_plugins",
        "rabbitmq_cookie": "rabbit/.erlang.cookie",
        "sysctl_conf": "etc/sysctl.conf",
        "clients_conf": "etc/openstack-clients.conf",
        "haproxy_external_pem": "run/tls/external.pem",
    }
    path_lines = "\n".join(f"  {k}: {root}/{{id}}/{v}" for k, v in paths.items())
    return f"""nodes: !replace
{nodes}
vips:
  internal: {{address: {net.vip(0)}, prefix: 24, interface: eth0, virtual_router_id: 61}}
  external: {{address: {net.vip(1)}, prefix: 24, interface: eth0, virtual_router_id: 62}}
paths:
{path_lines}
manage_services: false
galera: {{writer: ita}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Network, NATS and two minions; all removed afterwards."""
    root = tmp_path_factory.mktemp("apply")
    net = LabNet(f"ha{os.getpid() % 10000}", "10.99.6", NODES)
    procs: list[subprocess.Popen[bytes]] = []
    server: EmbeddedServer | None = None
    up(net)
    try:
        # production identities end to end: a master, a minion each, apply as an admin
        auth_dir = root / "auth"
        store.init(
            auth_dir,
            nodes=list(NODES),
            masters=["master"],
            admins=["admin"],
            operators=[],
            hosts=[net.root_address],
        )
        server = EmbeddedServer(
            ServerOptions(
                data_dir=root / "nats", auth=ServerAuth(auth_dir), host=net.root_address, port=-1
            )
        )
        url = server.start()

        def as_(name: str) -> dict[str, str]:
            return {
                "HACTL_CREDS": str(auth_dir / "creds" / f"{name}.nk"),
                "HACTL_TLS_CA": str(auth_dir / "ca.crt"),
            }

        env = clean_env(
            HACTL_HAPROXY_STATS_PASSWORD="it-stats-secret",
            HACTL_RABBITMQ_MONITOR_PASSWORD="it-mon",
            HACTL_RABBITMQ_OPENSTACK_PASSWORD="it-os",
            HACTL_RABBITMQ_COOKIE="itcookie0123456789",
            **KEYSTONE_ENV,
            HACTL_HAPROXY_EXTERNAL_PEM=store.server_pem([net.vip(1)])[1].decode(),
            **as_("admin"),
        )
        mlog = (root / "master.log").open("wb")
        argv = [HACTL, "--nats", url, "--log-format", "json", "master"]
        procs.append(
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=mlog,
                stderr=mlog,
                env={**env, **as_("master")},
            )
        )
        res = run_cli(["--nats", url, "ping", "master", "--wait", "20"], env=env, timeout=30)
        assert res.returncode == 0, res.stderr
        for node in NODES:
            (root / node / "etc").mkdir(parents=True)
            (root / node / "run").mkdir()
            cfg = root / f"{node}.yaml"
            cfg.write_text(
                f"id: {node}\nallowed_roots: [{root / node}]\nheartbeat_interval: 60\n"
                f"content_policy: {{read_dirs: [{root / node / 'run'}]}}\n"
                f"vrrp: {{track_dir: {root / node / 'run'},"
                " instances: [VI_INTERNAL, VI_EXTERNAL]}\n"
            )
            log = (root / f"{node}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    exec_argv(
                        net,
                        node,
                        [
                            HACTL,
                            "--nats",
                            url,
                            "--log-format",
                            "json",
                            "minion",
                            "--config",
                            str(cfg),
                        ],
                    ),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env={**env, **as_(node)},
                )
            )
        pillar = root / "test-pillar.yaml"
        pillar.write_text(_pillar(net, root))
        for node in NODES:
            res = run_cli(["--nats", url, "ping", node, "--wait", "20"], env=env, timeout=30)
            assert res.returncode == 0, res.stderr
        yield Site(net, url, root, pillar, env)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if server is not None:
            server.stop()
        down(net)


def _sysctl(site: Site, node: str) -> str:
    argv = exec_argv(site.net, node, ["cat", "/proc/sys/net/ipv4/ip_nonlocal_bind"])
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


def _resources(report: dict, node: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return {r["id"]: r for r in report["minions"][node]["resources"]}


def test_one_ping_asks_every_target_at_once(site: Site) -> None:
    """`hactl ping master ita itb --json`: every target answered, one row each; a target
    that never answers makes it exit 2 with one line naming it, the others still printed."""
    res = run_cli(
        ["--nats", site.url, "ping", "master", *NODES, "--wait", "20", "--json"],
        env=site.env,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["pings"]
    assert [(r["target"], r["ok"]) for r in rows] == [("master", True), *((n, True) for n in NODES)]
    res = run_cli(
        ["--nats", site.url, "ping", NODES[0], "nosuch", "--wait", "1"], env=site.env, timeout=60
    )
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert f"{NODES[0]}: pong" in res.stdout
    assert "nosuch" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_apply_test_then_apply_then_idempotent(site: Site) -> None:
    """--test shows diffs and writes nothing; apply writes; a second apply changes nothing."""
    dry = site.apply("--test", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["test"] is True and set(report["minions"]) == set(NODES)
    res = _resources(report, "ita")
    assert res["haproxy_cfg"]["result"] is None
    assert "+    bind 10.99.6.100:5000" in res["haproxy_cfg"]["changes"]["diff"]
    assert res["ip_nonlocal_bind"]["changes"] == {"old": "0", "new": "1"}
    assert not site.file("ita", "haproxy.cfg").exists()
    assert _sysctl(site, "ita") == "0"
    assert "it-stats-secret" not in dry.stdout and "admin:***" in dry.stdout

    started = time.monotonic()
    real = site.apply("--json")
    took = time.monotonic() - started
    assert real.returncode == 0, real.stderr + real.stdout
    report = json.loads(real.stdout)
    for node in NODES:
        assert report["minions"][node]["status"] == "ok"
        assert (
            report["minions"][node]["changed"] == 11
        )  # 10 files (the external certificate too) + the sysctl
        assert _sysctl(site, node) == "1"
        cfg = site.file(node, "haproxy.cfg").read_text()
        assert f"server ita {site.net.address('ita')}:5000" in cfg
        assert "stats auth admin:it-stats-secret" in cfg  # the real secret is in the file only
        keepalived = site.file(node, "keepalived.conf").read_text()
        assert f"router_id {node}\n" in keepalived
    print(f"\napply to 2 minions: {took:.2f}s wall (CLI start included)")

    again = site.apply("--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert all(m["changed"] == 0 for m in report["minions"].values()), report

    text = site.apply()  # the human view: a table, exit 0
    assert text.returncode == 0 and "ita" in text.stdout and "ok" in text.stdout


def test_invalid_haproxy_template_is_refused_and_old_file_kept(site: Site, tmp_path: Path) -> None:
    """A template edit haproxy -c rejects: minion check fails, old file byte-identical, exit 1."""
    first = site.apply("--json")
    assert first.returncode == 0, first.stderr
    before = site.file("ita", "haproxy.cfg").read_bytes()
    tree = tmp_path / "states"
    shutil.copytree(SHIPPED, tree)
    tpl = tree / "haproxy" / "haproxy.cfg.j2"
    tpl.write_text(
        # a keyword the content policy allows, with a value haproxy -c refuses
        tpl.read_text().replace("    retries 3\n", "    retries 3\n    balance bogus-algo\n")
    )
    bad = site.apply("--json", tree=tree)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    report = json.loads(bad.stdout)
    res = _resources(report, "ita")
    assert res["haproxy_cfg"]["result"] is False
    assert "balance only supports" in res["haproxy_cfg"]["check_output"]
    assert report["minions"]["ita"]["status"] == "failed"
    assert site.file("ita", "haproxy.cfg").read_bytes() == before
    human = site.apply(tree=tree)
    assert human.returncode == 1 and "FAILED" in human.stdout


def test_bad_tree_exits_2_and_pushes_nothing(site: Site, tmp_path: Path) -> None:
    """A broken tree is one error line with file:line, exit 2, and no job reaches a minion."""
    tree = tmp_path / "states"
    shutil.copytree(SHIPPED, tree)
    init = tree / "galera" / "init.yaml"
    init.write_text(init.read_text().replace("file.managed:", "file.manged:"))
    assert site.apply().returncode == 0  # a known state first
    before = {n: site.file(n, "galera.cnf").stat().st_mtime_ns for n in NODES}
    since = time.time()
    bad = site.apply(tree=tree)
    # any job would be in the stream: replay hactl/job/** from before the apply for a while
    ago = f"{time.time() - since + 2:.0f}s"
    argv = ["events", "tail", "--tag", "hactl/job/**", "--since", ago, "--json"]
    tail = subprocess.Popen(
        [HACTL, "--nats", site.url, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=site.env,
    )
    time.sleep(2.0)
    alive = tail.poll() is None
    tail.terminate()
    out, err = tail.communicate(timeout=10)
    assert alive, f"the tail must run to prove anything: {err}"
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{init}:6:" in lines[0] and "file.manged" in lines[0]
    jobs = [e for e in map(json.loads, out.splitlines()) if e["ts"] >= since]
    assert jobs == [], "no job was published"
    assert {n: site.file(n, "galera.cnf").stat().st_mtime_ns for n in NODES} == before


def test_minion_that_does_not_answer_is_reported(site: Site, tmp_path: Path) -> None:
    """A pillar node with no running minion is 'no answer' after --timeout; the others apply."""
    extra = tmp_path / "extra.yaml"
    extra.write_text("nodes:\n  itc: {address: 10.99.6.13, priority: 20, roles: [haproxy]}\n")
    args = [
        "--nats",
        site.url,
        "apply",
        str(SHIPPED),
        "--pillar",
        str(site.pillar),
        "--pillar",
        str(extra),
        "--timeout",
        "2",
        "--json",
    ]
    res = run_cli(args, env=site.env, timeout=60)  # the hang guard; --timeout bounds the wait
    assert res.returncode == 1, res.stderr
    report = json.loads(res.stdout)
    assert report["minions"]["itc"]["status"] == "no_answer"
    assert report["minions"]["ita"]["status"] == "ok" and report["minions"]["itb"]["status"] == "ok"


def test_rolling_apply_stops_when_the_view_has_not_heard_the_batch(site: Site) -> None:
    """--batch 1 with no master keeping a cluster view: the first node is applied, then the
    roll stops (silence is not health), says where and why, exit 1; the second is untouched."""
    res = site.apply("--batch", "1", "--wait", "2s")
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert "batch 1/2: ita" in out and "roll stopped after batch 1 (ita)" in out
    assert "no view of ita" in out and "batch 2/2" not in out
