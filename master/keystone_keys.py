"""Keystone's fernet key repository as the site keeps it (one pillar secret of ``INDEX KEY``
lines) and its rotation: pure functions, tested without Keystone.

The rotation is Keystone's own (``keystone-manage fernet_rotate``): the staged key (index 0)
becomes the new primary (the highest index + 1), a fresh staged key takes index 0, and the
oldest secondaries go until ``max_active_keys`` remain. It is safe across nodes only if every
node already holds the staged key it promotes -- which ``hactl keystone rotate`` checks by
pushing the current repository everywhere first: then a token signed anywhere, with the old
primary or the new one, validates everywhere at every instant of the second push.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from hactl.auth.store import write_secret
from hactl.errors import HactlError
from hactl.wire import fernet


class KeyRepoError(HactlError):
    """The key repository file is unusable (the reason names the line, never a key)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def new_key() -> str:
    """A fresh Fernet key: URL-safe base64 of 32 random bytes (what fernet_setup makes)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def parse(text: str, path: str = "keys") -> dict[int, str]:
    """The repository of ``text`` (hactl/wire/fernet.py), or KeyRepoError naming ``path``."""
    try:
        return fernet.parse(text)
    except ValueError as exc:
        raise KeyRepoError(path, str(exc)) from None


render = fernet.render


def rotate(keys: dict[int, str], max_active: int, staged: str | None = None) -> dict[int, str]:
    """One rotation (module docstring); ``staged``: the new staged key (fresh by default)."""
    if max_active < 3:
        raise ValueError("max_active_keys must be at least 3 (staged, primary, one older)")
    out = dict(keys)
    out[max(out) + 1] = out[0]
    out[0] = staged or new_key()
    for index in sorted(i for i in out if i != 0):
        if len(out) <= max_active:
            break
        del out[index]
    return out


def write(path: Path, keys: dict[int, str]) -> None:
    """Replace ``path`` atomically with ``keys``, 0600 (the old file until the rename)."""
    write_secret(path, render(keys).encode("ascii"))


__all__ = ["KeyRepoError", "new_key", "parse", "render", "rotate", "write"]
