"""Keystone's secrets for tests that compile the shipped tree: fixed, valid values (the golden
files are rendered from them)."""

from __future__ import annotations

import base64

#: a fernet repository: staged key 0 and primary 1 (URL-safe base64 of 32 bytes each)
FERNET_KEYS = "\n".join(
    f"{i} {base64.urlsafe_b64encode(bytes([48 + i]) * 32).decode()}" for i in (0, 1)
)

ENV = {
    "HACTL_KEYSTONE_DB_PASSWORD": "test-only-keystone-db",
    "HACTL_KEYSTONE_ADMIN_PASSWORD": "test-only-keystone-admin",
    "HACTL_KEYSTONE_FERNET_KEYS": FERNET_KEYS,
}
