"""``hactl auth check`` against real nats-servers: one configured from the auth directory
passes every check; the same server after ``auth add-minion`` and ``auth revoke`` without a
reload is missing the new minion and still accepts the revoked one, and is whole again after
a reload; Debian 12's nats-server (2.9.10) is reported as not taking TLS handshake-first,
with the fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from hactl.auth import store
from hactl.bus.embedded import ENV_BINARY, EmbeddedServer, ServerAuth, ServerOptions
from tests.integration.conftest import make_auth_dir
from tests.integration.procs import clean_env, run_cli

DEBIAN_NATS = Path("/usr/sbin/nats-server")


def _check(url: str, auth_dir: Path, first: bool) -> tuple[int, dict[str, dict[str, object]]]:
    res = run_cli(
        ["--nats", url, "auth", "check", "--dir", str(auth_dir), "--json"],
        env=clean_env(HACTL_TLS_HANDSHAKE_FIRST="1" if first else "0"),
        timeout=60,
    )
    assert res.stdout, res.stderr
    return res.returncode, {f["check"]: f for f in json.loads(res.stdout)}


def _reload(server: EmbeddedServer) -> None:
    assert server.pid
    os.kill(server.pid, signal.SIGHUP)  # the server this test started, by its pid
    time.sleep(1.0)  # nats-server applies a reload at once; give it a beat


def test_a_server_missing_an_identity_and_keeping_a_revoked_one_is_told(tmp_path: Path) -> None:
    """All ok from the auth directory's own config; after add-minion and revoke without a
    reload: exit 2, the new minion refused, the revoked one still accepted; reload: all ok."""
    auth_dir = make_auth_dir(tmp_path / "auth")
    server = EmbeddedServer(
        ServerOptions(data_dir=tmp_path / "nats", auth=ServerAuth(auth_dir), port=-1)
    )
    url = server.start()
    try:
        first = server.handshake_first
        code, found = _check(url, auth_dir, first)
        assert code == 0 and all(f["ok"] for f in found.values()), found
        assert found["permissions"]["detail"].startswith("minion ctl1 may not publish as ctl2")
        assert "store account may hold" in str(found["jetstream"]["detail"])
        auth = store.AuthDir(auth_dir)
        auth.add("minion", "ctl9")
        kept = auth.creds("ctl3").read_bytes()
        auth.revoke("ctl3")
        auth.creds("ctl3").write_bytes(kept)  # an operator still holding the old key tries it
        code, found = _check(url, auth_dir, first)
        assert code == 2
        assert not found["minion ctl9"]["ok"] and "lacks this identity" in str(
            found["minion ctl9"]["fix"]
        )
        assert not found["minion ctl3"]["ok"]
        assert found["minion ctl3"]["detail"] == "revoked, but the server still accepts it"
        _reload(server)
        code, found = _check(url, auth_dir, first)
        assert code == 0, found
        assert found["minion ctl3"]["detail"] == "revoked, refused"
    finally:
        server.stop()


def test_debian_12_nats_server_is_told_to_take_tls_after_the_greeting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against Debian 12's nats-server with hactl's default (handshake-first): exit 2, the tls
    finding names the version floor and HACTL_TLS_HANDSHAKE_FIRST=0; with that set: all ok."""
    if not DEBIAN_NATS.is_file() or shutil.which(str(DEBIAN_NATS)) is None:
        pytest.skip("Debian's nats-server is not installed (scripts/install.sh installs it)")
    monkeypatch.setenv(ENV_BINARY, str(DEBIAN_NATS))
    auth_dir = make_auth_dir(tmp_path / "auth")
    server = EmbeddedServer(
        ServerOptions(data_dir=tmp_path / "nats", auth=ServerAuth(auth_dir), port=-1)
    )
    url = server.start()
    try:
        if server.handshake_first:
            pytest.skip(f"{DEBIAN_NATS} takes handshake-first (not 2.9.x)")
        code, found = _check(url, auth_dir, True)
        assert code == 2 and not found["tls"]["ok"], found
        assert "HACTL_TLS_HANDSHAKE_FIRST=0" in str(found["tls"]["fix"])
        assert all(f["ok"] for k, f in found.items() if k != "tls"), found
        assert str(found["server"]["detail"]).startswith("nats-server 2.9")
        code, found = _check(url, auth_dir, False)
        assert code == 0, found
    finally:
        server.stop()
