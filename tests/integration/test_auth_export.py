"""`hactl auth init` and `hactl auth export` for an existing NATS deployment: the exported
authorization block loads in a stock nats-server config a site writes itself, and hactl's
identities work against it with their least privilege."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hactl.auth.client import ClientAuth, for_identity
from hactl.bus import Bus, StreamSettings, ensure_stream, kv_bucket
from hactl.bus.embedded import find_binary, handshake_first_supported
from hactl.errors import BusError, PermissionRefused
from hactl.wire.envelope import new_event
from tests.integration.daemons import free_port
from tests.integration.procs import run_cli


def _who(auth: Path, name: str, first: bool | None = None) -> ClientAuth:
    """An identity of the site's server, greeting it the way that server version expects."""
    first = handshake_first_supported(find_binary()) if first is None else first
    return dataclasses.replace(for_identity(auth, name), tls_handshake_first=first)


def _site_config(tmp: Path, auth: Path, port: int, exported: str) -> Path:
    """A plain nats-server config as a site would write it, pasting hactl's export."""
    conf = tmp / "site-nats.conf"
    first = ', handshake_first: "300ms"' if handshake_first_supported(find_binary()) else ""
    conf.write_text(
        f'listen: "127.0.0.1:{port}"\n'
        f'jetstream {{ store_dir: "{tmp / "js"}" }}\n'
        f'tls {{ cert_file: "{auth / "server.crt"}", key_file: "{auth / "server.key"}"'
        f"{first} }}\n" + exported
    )
    conf.chmod(0o600)
    return conf


@contextlib.contextmanager
def _stock_server(conf: Path, log_path: Path, binary: Path | None = None) -> Iterator[None]:
    """nats-server -c conf, ready when its log says so; always ended, by its pid."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(binary or find_binary()), "-c", str(conf)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 15
            while "Server is ready" not in log_path.read_text():
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "stock server not ready"
                time.sleep(0.05)
            yield
        finally:
            proc.terminate()
            proc.wait(10)


async def test_exported_authorization_loads_in_a_stock_server(tmp_path: Path) -> None:
    """auth init -> auth export -> a stock nats-server -c site.conf: ready; a minion stores its
    own event, is refused another's; the master creates the stream (an admin may not)."""
    auth = tmp_path / "auth"
    init = run_cli(
        [
            "auth",
            "init",
            "--dir",
            str(auth),
            "--nodes",
            "ctl1,ctl2",
            "--operators",
            "alice",
            "--host",
            "127.0.0.1",
        ]
    )
    assert init.returncode == 0, init.stderr
    assert (auth / "creds" / "ctl1.nk").stat().st_mode & 0o777 == 0o600
    exported = run_cli(["auth", "export", "--dir", str(auth)])
    assert exported.returncode == 0, exported.stderr
    seeds = [p.read_text().strip() for p in (auth / "creds").iterdir()]
    assert seeds and not any(seed in exported.stdout for seed in seeds)  # public keys only
    port = free_port()
    conf = _site_config(tmp_path, auth, port, exported.stdout)
    with _stock_server(conf, tmp_path / "server.log"):
        url = f"nats://127.0.0.1:{port}"
        admin = await Bus.connect(url, _who(auth, "master"), name="site-master")
        minion = await Bus.connect(url, _who(auth, "ctl1"), name="site-ctl1")
        try:
            person = await Bus.connect(url, _who(auth, "admin"), name="site-admin")
            try:  # streams are the masters' to make (hactl/auth/perms.py)
                with pytest.raises(BusError):
                    await ensure_stream(person, StreamSettings(name="X", max_bytes=1024))
            finally:
                await person.close()
            await ensure_stream(admin, StreamSettings())
            assert await minion.persist(new_event("hactl/beacon/ctl1/vrrp", "ctl1", {})) > 0
            with pytest.raises(PermissionRefused):
                await minion.persist(new_event("hactl/beacon/ctl2/vrrp", "ctl2", {}), timeout=2)
        finally:
            await admin.close()
            await minion.close()


DEBIAN_SERVER = Path("/usr/sbin/nats-server")  # Debian 12's 2.9.10 (scripts/install.sh)


@pytest.mark.parametrize("which", ["pinned", "debian"])
async def test_a_whole_server_config_from_export_alone(tmp_path: Path, which: str) -> None:
    """`hactl auth export --server-config` is the site server's whole config (listen, TLS,
    accounts, JetStream, cluster routes): the pinned nats-server and Debian 12's 2.9.10
    (`--no-handshake-first`) each run it as written; the master makes the stream and a KV
    bucket, a minion stores its own event and is refused another's."""
    binary = find_binary() if which == "pinned" else DEBIAN_SERVER
    if not binary.exists():
        pytest.skip(f"{binary} is not installed (scripts/install.sh installs it)")
    first = handshake_first_supported(binary)
    auth = tmp_path / "auth"
    init = run_cli(
        ["auth", "init", "--dir", str(auth), "--nodes", "ctl1,ctl2", "--host", "127.0.0.1"]
    )
    assert init.returncode == 0, init.stderr
    port, route = free_port(), free_port()
    base = [
        "auth",
        "export",
        "--dir",
        str(auth),
        "--server-config",
        "--name",
        "site-1",
        "--listen",
        f"127.0.0.1:{port}",
        "--store-dir",
        str(tmp_path / "js"),
        "--handshake-first" if first else "--no-handshake-first",
    ]
    clustered = run_cli(
        [
            *base,
            "--cluster-listen",
            f"127.0.0.1:{route}",
            "--route",
            f"127.0.0.1:{route}",
            "--route",
            "10.0.0.12:6222",
        ]
    )
    assert clustered.returncode == 0, clustered.stderr
    assert "nats-route://route:" in clustered.stdout and "verify: true" in clustered.stdout
    assert "10.0.0.12:6222" in clustered.stdout
    assert ("handshake_first" in clustered.stdout) == first
    exported = run_cli(base)  # one member runs alone here: a cluster of one elects slowly
    assert exported.returncode == 0, exported.stderr
    conf = tmp_path / "site-1.conf"
    conf.write_text(exported.stdout)  # as written: nothing added by hand
    conf.chmod(0o600)
    with _stock_server(conf, tmp_path / "server.log", binary):
        url = f"nats://127.0.0.1:{port}"
        master = await Bus.connect(url, _who(auth, "master", first), name="site-master")
        minion = await Bus.connect(url, _who(auth, "ctl1", first), name="site-ctl1")
        try:
            await ensure_stream(master, StreamSettings())
            kv = await kv_bucket(master, "HACTL_CLUSTER")
            await kv.put("node.ctl1.vrrp", b"{}")
            assert await master.read_key("HACTL_CLUSTER", "node.ctl1.vrrp") == b"{}"
            assert await minion.persist(new_event("hactl/beacon/ctl1/vrrp", "ctl1", {})) > 0
            with pytest.raises(PermissionRefused):
                await minion.persist(new_event("hactl/beacon/ctl2/vrrp", "ctl2", {}), timeout=2)
        finally:
            await master.close()
            await minion.close()
