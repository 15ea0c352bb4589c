"""Which nats-server a config and a client are written for: the version floors of
handshake-first TLS (2.10.4) read from ``nats-server --version``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hactl.bus import embedded
from hactl.bus.embedded import HANDSHAKE_FIRST_SINCE, ServerAuth, parse_version

pytestmark = pytest.mark.unit


def test_versions_parse_and_compare_with_the_floor() -> None:
    """Debian 12's 2.9.10 is below the handshake-first floor, the pinned 2.15.1 above it."""
    assert parse_version("nats-server: v2.9.10\n") == (2, 9, 10)
    assert parse_version("nats-server: v2.15.1") == (2, 15, 1)
    assert parse_version("garbage") is None
    assert (2, 9, 10) < HANDSHAKE_FIRST_SINCE <= (2, 10, 4) < (2, 15, 1)


def test_the_tls_block_has_handshake_first_only_when_asked(tmp_path: Path) -> None:
    """The server's tls block: the key for servers that take it, none for older ones."""
    auth = ServerAuth(tmp_path)
    assert 'handshake_first: "300ms"' in auth.config_lines(tmp_path, True)[0]
    assert "handshake_first" not in auth.config_lines(tmp_path, False)[0]


def test_an_unknown_version_is_taken_as_new(monkeypatch: pytest.MonkeyPatch) -> None:
    """A binary whose version cannot be read gets the key (its own error would name it)."""
    monkeypatch.setattr(embedded, "server_version", lambda binary: None)
    assert embedded.handshake_first_supported(Path("/x"))
    monkeypatch.setattr(embedded, "server_version", lambda binary: (2, 9, 10))
    assert not embedded.handshake_first_supported(Path("/x"))
