"""A compromised admin key against a real minion and master (real nats-server, auth and TLS on):
every attack of the Trust II issue is refused with a typed reason, and nothing changed on disk
or in the process table; a master restarted over poisoned KV values keeps reacting."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from hactl.auth.perms import LEASE_BUCKET, VIEW_BUCKET
from hactl.bus import Bus, kv_bucket
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.wire.commands import CommandReply
from hactl.wire.envelope import Event, new_event
from hactl.wire.leases import BootstrapLease, bootstrap_key, encode_bootstrap
from tests.integration import galera
from tests.integration.conftest import NatsHandle, master_setup
from tests.integration.procs import Proc, clean_env
from tests.integration.test_minion_haproxy import _until_serving
from tests.integration.test_reactor_masters import _wait_log
from tests.unit.test_content_policy import REFUSED

UUID = "6f0d2c3e-0000-4000-8000-00000000abcd"
GRASTATE = f"# GALERA saved state\nversion: 2.1\nuuid: {UUID}\nseqno: 41\nsafe_to_bootstrap: 0\n"
PROBE_RULE = """
- name: probe
  on: hactl/event/probe/*
  do:
    - event.fire: {tag: hactl/event/probe-done/x, data: {n: "{{ event.data.n }}"}}
"""


@dataclass
class Rig:
    """The server, the master and minion processes, the admin's connection, the minion's
    files."""

    url: str
    root: Path
    admin: Bus
    minion: Proc
    master: Proc
    rules: Path
    nats: NatsHandle

    async def ask(self, cmd: str, args: dict[str, Any]) -> CommandReply:
        """Send one command to ctl1 as the (compromised) admin."""
        return await self.admin.request("ctl1", cmd, args, timeout=20)


def _config(root: Path) -> str:
    data = root / "data"
    # no heartbeat during the test (each one runs `ip addr`, a child the process-table check
    # would see come and go)
    return f"""id: ctl1
heartbeat_interval: 3600
allowed_roots: [{root}/etc]
services:
  fakesvc: {{start: [/bin/true], status: [/bin/false]}}
galera: {{defaults_file: {root}/my.cnf, datadir: {data}, socket: {root}/none.sock,
          pid_file: {root}/none.pid}}
beacons: {{}}
"""


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory, nats: NatsHandle) -> AsyncIterator[Rig]:
    """One server, one master (a probe rule), one minion ctl1 with its own identity."""
    root = tmp_path_factory.mktemp("adversarial")
    (root / "etc").mkdir()
    (root / "etc" / "haproxy.cfg").write_text("global\n    maxconn 100\n")
    (root / "data").mkdir()
    (root / "data" / "grastate.dat").write_text(GRASTATE)
    rules = root / "reactors"
    rules.mkdir()
    (rules / "probe.yaml").write_text(PROBE_RULE)
    (root / "minion.yaml").write_text(_config(root))
    server = EmbeddedServer(
        ServerOptions(data_dir=root / "nats", auth=ServerAuth(nats.auth_dir), port=-1)
    )
    url = await asyncio.to_thread(server.start)
    procs: list[Proc] = []
    rig: Rig | None = None
    await master_setup(url, nats)
    admin = await Bus.connect(url, nats.auth("admin"), name="attacker", timeout=5)
    try:
        master = Proc(
            ["--nats", url, "--log-format", "json", "master", "--reactors", str(rules)],
            env=clean_env(**nats.env("master")),
        )
        procs.append(master)
        await _wait_log(master, "reactor_started")
        minion = Proc(
            [
                "--nats",
                url,
                "--log-format",
                "json",
                "minion",
                "--config",
                str(root / "minion.yaml"),
            ],
            env=clean_env(**nats.env("ctl1")),
        )
        procs.append(minion)
        await _until_serving(admin, "ctl1")
        rig = Rig(url, root, admin, minion, master, rules, nats)
        yield rig
    finally:
        for p in [*procs, *([rig.master] if rig is not None else [])]:
            p.stop()  # the master a test restarted too
        await admin.close()
        await asyncio.to_thread(server.stop)


def _disk(root: Path) -> dict[str, tuple[int, str]]:
    """Mode and content hash of every file under the minion's folders, and core_pattern."""
    out: dict[str, tuple[int, str]] = {}
    for sub in ("etc", "data"):
        for p in sorted((root / sub).rglob("*")):
            st = p.lstat()
            body = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else b""
            digest = hashlib.sha256(body if isinstance(body, bytes) else body.encode())
            out[str(p.relative_to(root))] = (st.st_mode, digest.hexdigest())
    out["core_pattern"] = (0, Path("/proc/sys/kernel/core_pattern").read_text())
    return out


def _children(pid: int) -> set[tuple[int, str]]:
    """(pid, command line) of every process the minion started that still exists."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) == pid and stat[0] != "Z":
                found.add((int(entry.name), (entry / "cmdline").read_bytes().decode()))
    return found


async def _refused(rig: Rig, cmd: str, args: dict[str, Any], *words: str) -> None:
    before, procs = _disk(rig.root), _children(rig.minion.pid)
    reply = await rig.ask(cmd, args)
    assert not reply.ok and reply.error_type == "CommandRefused", (cmd, args, reply)
    assert all(w in reply.error_message for w in words), (words, reply.error_message)
    assert _disk(rig.root) == before, f"{cmd} changed files: {reply.error_message}"
    assert _children(rig.minion.pid) == procs, f"{cmd} left a process"


def _plan(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"plan": [{"require": [], "watch": [], **r} for r in resources]}


async def test_check_commands_are_names_never_argv(rig: Rig) -> None:
    """A path as check (the basename trick), an argv, or the old check_cmd: refused."""
    base = {"path": f"{rig.root}/etc/haproxy.cfg", "content": "global\n"}
    await _refused(
        rig,
        "file.apply",
        {**base, "check": f"{rig.root}/etc/haproxy"},
        "not one of this minion's check commands",
    )
    await _refused(
        rig, "file.apply", {**base, "check": ["haproxy", "-D", "-f", "/tmp/e"]}, "check must be str"
    )
    await _refused(
        rig, "file.apply", {**base, "check_cmd": ["/bin/sh", "-c", "id"]}, "unknown argument"
    )


async def test_setuid_modes_and_paths_outside_the_roots(rig: Rig) -> None:
    """Modes 4755/6755/1777 and a path outside allowed_roots are refused."""
    for mode in ("4755", "6755", "1777", "02755"):
        await _refused(
            rig,
            "file.apply",
            {"path": f"{rig.root}/etc/x", "content": "x", "mode": mode},
            "refused",
        )
    await _refused(
        rig, "file.apply", {"path": "/etc/cron.d/evil", "content": "x"}, "outside the allowed roots"
    )


async def test_state_apply_refuses_the_whole_plan(rig: Rig) -> None:
    """A forbidden sysctl, a unit not configured, contents of the wrong type, each after a
    harmless file in the same plan: refused before the first resource runs."""
    good = {
        "id": "ok",
        "type": "file.managed",
        "args": {"path": f"{rig.root}/etc/ok.cfg", "contents": "x\n"},
    }
    for bad, why in (
        (
            {
                "id": "core",
                "type": "sysctl.present",
                "args": {"name": "kernel.core_pattern", "value": "|/tmp/x"},
            },
            "allowlist",
        ),
        (
            {"id": "off", "type": "service.running", "args": {"name": "poweroff.target"}},
            "not configured on this minion",
        ),
        (
            {
                "id": "zeros",
                "type": "file.managed",
                "args": {"path": f"{rig.root}/etc/z", "contents": 4096},
            },
            "contents must be str",
        ),
        (
            {
                "id": "suid",
                "type": "file.managed",
                "args": {"path": f"{rig.root}/etc/s", "contents": "x\n", "mode": "4755"},
            },
            "setuid",
        ),
        (
            {
                "id": "nocheck",
                "type": "file.managed",
                "args": {"path": f"{rig.root}/etc/c", "contents": "x\n", "check": "sh"},
            },
            "not one of this minion's check commands",
        ),
    ):
        await _refused(rig, "state.apply", _plan(good, bad), why)


LUA_HIDDEN = [
    ("global\n    \\x6cua-load {lua}\n", "lua-load"),
    ("global\n    # tuned \\\n    lua-load {lua}\n", "backslash"),
    ('global\n    "lua-"load {lua}\n', "lua-load"),
    ("global\n    maxconn 10\rlua-load {lua}\n", "control character"),
]


@pytest.mark.parametrize(
    ("config", "why"), LUA_HIDDEN, ids=["hex-escape", "comment-backslash", "quotes", "cr"]
)
async def test_lua_hidden_from_the_policy_never_runs(rig: Rig, config: str, why: str) -> None:
    """Trust III: a Lua file (any content may be written as a plain file) and an HAProxy
    config that loads it through HAProxy's own escapes, comment rules or quotes, checked with
    the minion's real ``haproxy -c``: refused before the check, the Lua never ran."""
    marker = rig.root / "data" / "lua-ran"
    lua = rig.root / "etc" / "x.lua"
    body = f'local f = io.open("{marker}", "w") f:write("root") f:close()\n'
    reply = await rig.ask("file.apply", {"path": str(lua), "content": body})
    assert reply.ok, reply
    try:
        await _refused(
            rig,
            "file.apply",
            {
                "path": f"{rig.root}/etc/haproxy.cfg",
                "content": config.format(lua=lua),
                "check": "haproxy",
            },
            "content policy",
            why,
        )
        assert not marker.exists(), "the Lua ran"
    finally:
        lua.unlink()


@pytest.mark.parametrize(("content", "word"), REFUSED, ids=[w for _, w in REFUSED])
async def test_each_exec_directive_is_refused_on_the_wire(
    rig: Rig, content: str, word: str
) -> None:
    """Every directive that runs or loads code, sent by file.apply and by state.apply."""
    path = f"{rig.root}/etc/evil.conf"
    await _refused(rig, "file.apply", {"path": path, "content": content}, "content policy", word)
    res = {"id": "evil", "type": "file.managed", "args": {"path": path, "contents": content}}
    await _refused(rig, "state.apply", _plan(res), "content policy")


async def test_bootstrap_needs_the_planners_lease(rig: Rig) -> None:
    """No lease, another node's lease, a malformed lease: refused, no mariadbd started."""
    args = {"uuid": UUID, "seqno": 41}
    await _refused(rig, "galera.bootstrap", args, "no bootstrap lease")
    leases = await kv_bucket(rig.admin, LEASE_BUCKET, ttl_s=600)
    key = bootstrap_key(UUID, 41)
    try:
        await leases.put(key, encode_bootstrap(BootstrapLease("ctl2", UUID, 41, "master")))
        await _refused(rig, "galera.bootstrap", args, "names ctl2")
        await leases.put(key, b"1796000000.0")  # the old, untyped lease value
        await _refused(rig, "galera.bootstrap", args, "not valid")
    finally:
        await leases.delete(key)


async def test_a_symlinked_grastate_is_never_rewritten(rig: Rig, tmp_path: Path) -> None:
    """With a valid lease, grastate.dat -> a root file: refused; the target is untouched."""
    victim = tmp_path / "victim"
    victim.write_text(GRASTATE)
    os.chmod(victim, 0o600)
    grastate = rig.root / "data" / "grastate.dat"
    grastate.unlink()
    grastate.symlink_to(victim)
    leases = await kv_bucket(rig.admin, LEASE_BUCKET, ttl_s=600)
    key = bootstrap_key(UUID, 41)
    try:
        await leases.put(key, encode_bootstrap(BootstrapLease("ctl1", UUID, 41, "master")))
        await _refused(rig, "galera.bootstrap", {"uuid": UUID, "seqno": 41}, "symlink")
        assert victim.read_text() == GRASTATE and victim.stat().st_mode & 0o777 == 0o600
    finally:
        await leases.delete(key)
        grastate.unlink()
        grastate.write_text(GRASTATE)


@pytest.mark.skipif(not galera.available(), reason="needs root, mariadbd and galera-4")
async def test_two_concurrent_bootstraps_start_one_server(rig: Rig, nats: NatsHandle) -> None:
    """Two bootstraps at once with a valid lease, on a minion of a real Galera node: one
    bootstraps, the other is refused (the server answers); one mariadbd in the table."""
    node = await asyncio.to_thread(galera.GaleraNode)
    cfg = rig.root / "galera-minion.yaml"
    cfg.write_text(f"""id: ctl2
heartbeat_interval: 300
galera: {{defaults_file: {node.cnf}, datadir: {node.datadir}, socket: {node.socket},
          pid_file: {node.pid_file}}}
""")
    minion = Proc(
        ["--nats", rig.url, "minion", "--config", str(cfg)], env=clean_env(**nats.env("ctl2"))
    )
    leases = await kv_bucket(rig.admin, LEASE_BUCKET, ttl_s=600)
    key = ""
    try:
        await asyncio.to_thread(node.start, "--wsrep-new-cluster")
        await asyncio.to_thread(node.stop)  # a clean stop: grastate holds the position
        text = (node.datadir / "grastate.dat").read_text()
        uuid = text.split("uuid:")[1].split()[0]
        seqno = int(text.split("seqno:")[1].split()[0])
        key = bootstrap_key(uuid, seqno)
        await leases.put(key, encode_bootstrap(BootstrapLease("ctl2", uuid, seqno, "master")))
        await _until_serving(rig.admin, "ctl2")
        args = {"uuid": uuid, "seqno": seqno, "timeout": 60}
        first, second = await asyncio.gather(
            rig.admin.request("ctl2", "galera.bootstrap", args, timeout=90),
            rig.admin.request("ctl2", "galera.bootstrap", args, timeout=90),
        )
        results = sorted([first, second], key=lambda r: r.ok)
        assert results[1].ok and results[1].result["result"] is True, results
        assert results[0].error_type == "CommandRefused", results[0]
        assert "stop it before bootstrapping" in results[0].error_message, results[0]
        servers = [c for _, c in _children(minion.pid) if "mariadbd" in c]
        assert len(servers) == 1, servers
    finally:
        if key:
            await leases.delete(key)
        minion.stop()
        await asyncio.to_thread(node.remove)


async def _probe(rig: Rig, n: int) -> float:
    """Fire hactl/event/probe/x as the admin; seconds until the master's rule answers."""
    got = asyncio.Event()

    async def on_done(e: Event) -> None:
        if str(e.data.get("n")) == str(n):
            got.set()

    subs = await rig.admin.subscribe("hactl/event/probe-done/x", on_done)
    start = time.perf_counter()
    try:
        await rig.admin.persist(new_event("hactl/event/probe/x", "admin", {"n": n}))
        await asyncio.wait_for(got.wait(), 20)
    finally:
        for sub in subs:
            await sub.unsubscribe()
    return time.perf_counter() - start


async def test_poisoned_events_and_kv_do_not_stop_the_master(rig: Rig) -> None:
    """ctl1's own key sends vips: [[1]] and malformed beacons; the admin writes garbage into
    the view's KV; the master, also restarted over it, still reacts to a real event."""
    ctl1 = await Bus.connect(rig.url, rig.nats.auth("ctl1"), name="poisoner", timeout=5)
    try:
        poison = {"VI_1": {"state": "MASTER", "priority": 150, "vips": [[1]], "vip_here": True}}
        bad: list[Any] = [poison, {"local": {"running": "yes"}}, {"x" * 300: {}}, [1, 2]]
        for items in bad:
            kind = "galera" if "local" in str(items) else "vrrp"
            await ctl1.persist(new_event(f"hactl/beacon/ctl1/{kind}", "ctl1", {"items": items}))
    finally:
        await ctl1.close()
    view = await kv_bucket(rig.admin, VIEW_BUCKET)
    await view.put("node.ctl1.vrrp", msgpack.packb(poison))
    await view.put("node.ctl2.galera", b"\xc1 not msgpack")
    await view.put("node.ctl3.minion", msgpack.packb(["not", "a", "map"]))
    await _probe(rig, 1)
    rig.master.stop()
    restarted = Proc(
        ["--nats", rig.url, "--log-format", "json", "master", "--reactors", str(rig.rules)],
        env=clean_env(**rig.nats.env("master")),
    )
    rig.master = restarted
    await _wait_log(restarted, "reactor_started")
    await _probe(rig, 2)
    assert "view_value_ignored" in restarted.stderr_text()
    assert restarted.alive()
