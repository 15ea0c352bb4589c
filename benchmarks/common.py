"""What every benchmark shares: a server with auth and TLS as in production.

Benchmarks speak for many made-up minions and publish baseline traffic on their own subjects,
so their clients use the tests' harness identity (tests/integration/conftest.py); masters run
as the real ``master`` identity, so the reactor is measured with its production permissions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hactl.auth.client import ClientAuth, for_identity
from hactl.bus.embedded import EmbeddedServer, ServerAuth
from tests.integration.conftest import HARNESS, make_auth_dir


def bench_auth(root: Path, hosts: list[str] | None = None) -> ServerAuth:
    """An auth directory under ``root`` (production identities plus the harness)."""
    return ServerAuth(make_auth_dir(root / "auth", hosts))


def client(auth: ServerAuth, name: str = HARNESS) -> ClientAuth:
    """Credentials of ``name`` (default: the harness)."""
    return for_identity(auth.auth_dir, name)


def env(auth: ServerAuth, name: str = HARNESS) -> dict[str, str]:
    """The environment of a ``hactl`` child connecting as ``name``."""
    creds = auth.auth_dir / "creds" / f"{name}.nk"
    return {**os.environ, "HACTL_CREDS": str(creds), "HACTL_TLS_CA": str(auth.auth_dir / "ca.crt")}


def lab_folder(script: str) -> Path | None:
    """A fresh folder for a benchmark's lab (the lab creates it, 0755: mysqld must traverse
    it); None, with the reason on stderr, when not root (a lab lives in network namespaces)."""
    if os.geteuid() != 0:
        print(f"{script}: needs root (a lab in network namespaces)", file=sys.stderr)
        return None
    folder = Path(tempfile.mkdtemp(prefix=f"hactl-{script.removesuffix('.py')}-"))
    folder.rmdir()
    return folder


def teardown(master: subprocess.Popen[bytes] | None, server: EmbeddedServer, folder: Path) -> None:
    """End a benchmark's master (SIGTERM; its stop is bounded at 30 s, decision in
    master/daemon.py), then its server, then its folder."""
    if master is not None:
        master.terminate()
        master.wait(60)
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)
