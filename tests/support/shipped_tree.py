"""A copy of the shipped state tree, with every secret its pillar reads in the environment
(test-only values; the external VIP's certificate is the committed test one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.keystone_keys import ENV as KEYSTONE_ENV

ROOT = Path(__file__).resolve().parents[2]
#: a test-only certificate and key for the external VIP (hactl.auth.store.server_pem)
TEST_PEM = ROOT / "tests" / "unit" / "golden" / "external-tls.pem"


def shipped_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path/states``: the shipped tree, ready to compile or to break."""
    for var in ("HAPROXY_STATS", "RABBITMQ_MONITOR", "RABBITMQ_OPENSTACK"):
        monkeypatch.setenv(f"HACTL_{var}_PASSWORD", "test-only-secret")
    monkeypatch.setenv("HACTL_RABBITMQ_COOKIE", "test-only-cookie")
    for key, value in KEYSTONE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HACTL_HAPROXY_EXTERNAL_PEM", TEST_PEM.read_text(encoding="utf-8"))
    shutil.copytree(ROOT / "states", tmp_path / "states")
    return tmp_path / "states"
