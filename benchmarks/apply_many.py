"""`hactl apply` of the shipped state tree to N simulated minions (default 1,000).

One "host" process (run inside a lab network namespace, so the sysctl it sets is its own)
serves N minion endpoints on one NATS connection; each runs the real ``state.apply`` executor
(real files under a temp dir, the real ``haproxy -c`` check, the real diff). Three of the N are
full controllers (galera, rabbitmq, keepalived, APIs); the others run HAProxy only -- a
1,000-node site has thousands of HAProxy frontends, not 1,000 Galera members.

Printed: compile time, `hactl apply --test`, `hactl apply` (writes), a second `hactl apply`
(no change), each in seconds and per minion, and as a ratio to a raw-NATS baseline measured in
the same run (a `test.ping` request to every endpoint, concurrently).
Root. Usage: .venv/bin/python benchmarks/apply_many.py [N]
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import bench_auth, client
from benchmarks.common import env as bench_env
from hactl.auth.store import server_pem
from hactl.bus import Bus
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.lab.net import LabNet, down, exec_argv, up
from hactl.master.states.compile import compile_tree
from hactl.master.states.tree import load_tree

HACTL = str(Path(sys.executable).parent / "hactl")


def ids(n: int) -> list[str]:
    """sim0001 ... simN."""
    return [f"sim{i:04d}" for i in range(1, n + 1)]


async def host(url: str, n: int, root: Path) -> None:
    """Serve N minion endpoints with the real executors until stdin closes."""
    from hactl.log import configure  # noqa: PLC0415 - after sys.path is set
    from hactl.minion.executors import dispatch  # noqa: PLC0415 - after sys.path is set
    from hactl.minion.executors.base import ExecContext  # noqa: PLC0415 - after sys.path is set
    from hactl.minion.executors.policy import (  # noqa: PLC0415 - after sys.path is set
        ContentPolicy,
    )

    configure("json", -1)  # warnings only: 1,000 command_done lines per run are noise here

    bus = await Bus.connect(url, client(AUTH[0]), name="bench-host", timeout=10)
    for mid in ids(n):
        (root / mid).mkdir(parents=True, exist_ok=True)
        own = frozenset({str(root / mid)})  # every path of the pillar below lives here
        policy = ContentPolicy(read_dirs=own, track_dirs=own)
        ctx = ExecContext(
            minion_id=mid, allowed_roots=(root / mid,), command_timeout=120, content_policy=policy
        )

        async def handler(req, ctx=ctx):  # type: ignore[no-untyped-def]
            return await dispatch(ctx, req)

        await bus.serve(mid, handler)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await bus.close()


def pillar(n: int, root: Path) -> str:
    """N nodes: three full controllers, the rest HAProxy only."""
    lines = ["nodes: !replace"]
    for i, mid in enumerate(ids(n)):
        roles = "[haproxy, keepalived, galera, rabbitmq, api]" if i < 3 else "[haproxy]"
        prio = f", priority: {150 - 50 * i}" if i < 3 else ""
        lines.append(f"  {mid}: {{address: 10.99.7.{11 + i % 3}{prio}, roles: {roles}}}")
    paths = {
        "haproxy_cfg": "haproxy.cfg",
        "haproxy_pid": "haproxy.pid",
        "haproxy_socket": "h.sock",
        "haproxy_state": "h.state",
        "keepalived_conf": "keepalived.conf",
        "keepalived_fifo": "k.fifo",
        "vrrp_track_dir": ".",
        "galera_cnf": "galera.cnf",
        "rabbitmq_conf": "rabbit.conf",
        "rabbitmq_definitions": "defs.json",
        "rabbitmq_enabled_plugins": "enabled_plugins",
        "rabbitmq_cookie": "erlang.cookie",
        "sysctl_conf": "sysctl.conf",
        "clients_conf": "openstack-clients.conf",
        "haproxy_external_pem": "external.pem",
    }
    lines.append("paths:")
    lines += [f"  {k}: {root}/{{id}}/{v}" for k, v in paths.items()]
    lines += [
        "vips:",
        "  internal: {address: 10.99.7.100, prefix: 24, interface: eth0, virtual_router_id: 71}",
        "  external: {address: 10.99.7.101, prefix: 24, interface: eth0, virtual_router_id: 72}",
        "manage_services: false",
        "galera: {writer: sim0001}",
    ]
    return "\n".join(lines) + "\n"


async def ping_all(url: str, n: int) -> float:
    """Baseline: one test.ping to every endpoint, all at once; seconds."""
    bus = await Bus.connect(url, client(AUTH[0]), name="bench-ping", timeout=10)
    try:
        start = time.perf_counter()
        replies = await asyncio.gather(*(bus.request(m, "test.ping", timeout=60) for m in ids(n)))
        took = time.perf_counter() - start
        assert all(r.ok for r in replies)
        return took
    finally:
        await bus.close()


def run_apply(url: str, pillar_path: Path, env: dict[str, str], *extra: str) -> tuple[float, dict]:  # type: ignore[type-arg]
    start = time.perf_counter()
    res = subprocess.run(
        [
            HACTL,
            "--nats",
            url,
            "apply",
            str(ROOT / "states"),
            "--pillar",
            str(pillar_path),
            "--timeout",
            "600",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=False,
    )
    took = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(
            f"apply failed ({res.returncode}): {res.stderr[-2000:]} {res.stdout[-2000:]}"
        )
    return took, json.loads(res.stdout)


AUTH: list[ServerAuth] = []  # this run's auth directory (set by main, or --host in the child)


def main() -> None:
    """Build, measure, print, tear down."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    root = Path(tempfile.mkdtemp(prefix="hactl-apply-bench-"))
    net = LabNet(f"hb{os.getpid() % 10000}", "10.99.7", ("bench",))
    secrets = {
        "HACTL_HAPROXY_STATS_PASSWORD": "bench-secret",
        "HACTL_RABBITMQ_MONITOR_PASSWORD": "bench-mon",
        "HACTL_RABBITMQ_OPENSTACK_PASSWORD": "bench-os",
        "HACTL_RABBITMQ_COOKIE": "benchcookie0123456789",
        "HACTL_KEYSTONE_DB_PASSWORD": "bench-keystone-db",
        "HACTL_KEYSTONE_ADMIN_PASSWORD": "bench-keystone-admin",
        "HACTL_KEYSTONE_FERNET_KEYS": "0 " + "A" * 43 + "=\n1 " + "B" * 43 + "=",
        "HACTL_HAPROXY_EXTERNAL_PEM": server_pem([net.vip(1)])[1].decode(),
    }
    env = {**os.environ, **secrets}
    pillar_path = root / "bench-pillar.yaml"
    pillar_path.write_text(pillar(n, root / "nodes"))
    server = None
    hostp = None
    up(net)
    try:
        os.environ.update(secrets)
        t0 = time.perf_counter()
        tree = load_tree(ROOT / "states", [pillar_path])
        plans = compile_tree(tree, ids(n))
        compile_s = time.perf_counter() - t0
        size = sum(len(json.dumps([r.wire() for r in p.resources])) for p in plans.values())
        AUTH.append(bench_auth(root, [net.root_address]))
        server = EmbeddedServer(
            ServerOptions(data_dir=root / "nats", auth=AUTH[0], host=net.root_address, port=-1)
        )
        url = server.start()
        hostp = subprocess.Popen(
            exec_argv(
                net,
                "bench",
                [
                    sys.executable,
                    __file__,
                    "--host",
                    url,
                    str(n),
                    str(root / "nodes"),
                    str(AUTH[0].auth_dir),
                ],
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert hostp.stdout is not None
        if hostp.stdout.readline().strip() != "ready":
            raise SystemExit("host did not start")
        env = {**env, **bench_env(AUTH[0], "admin")}  # apply as a real admin
        ping_s = asyncio.run(ping_all(url, n))
        test_s, test_r = run_apply(url, pillar_path, env, "--test")
        apply_s, apply_r = run_apply(url, pillar_path, env)
        again_s, again_r = run_apply(url, pillar_path, env)
        changed = sum(m["changed"] for m in apply_r["minions"].values())
        unchanged = sum(m["changed"] for m in again_r["minions"].values())
        if not (apply_r["ok"] and again_r["ok"] and test_r["ok"] and unchanged == 0):
            raise SystemExit(
                "an apply did not succeed everywhere, or the second one changed things"
            )
        print(
            f"hactl apply, shipped tree, {n} simulated minions (real state.apply, real haproxy -c)"
        )
        print(
            f"  compile (lint + render {n} plans, {size / 1e6:.1f} MB of plans): {compile_s:.2f} s"
            f" = {compile_s / n * 1000:.2f} ms/minion"
        )
        print(f"  baseline raw NATS: test.ping to all {n}: {ping_s:.3f} s")
        for label, took in (
            ("apply --test", test_s),
            ("apply (writes)", apply_s),
            ("apply again (no change)", again_s),
        ):
            print(
                f"  {label:<24} {took:7.2f} s = {took / n * 1000:6.2f} ms/minion"
                f"  ({took / ping_s:7.1f}x baseline)"
            )
        print(f"  resources changed by the first apply: {changed}; by the second: {unchanged}")
    finally:
        if hostp is not None:
            hostp.communicate(timeout=30)
        if server is not None:
            server.stop()
        for var in secrets:
            os.environ.pop(var, None)
        down(net)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--host":
        AUTH.append(ServerAuth(Path(sys.argv[5])))
        asyncio.run(host(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
    else:
        main()
