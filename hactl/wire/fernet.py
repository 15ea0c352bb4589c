"""Keystone's fernet key repository as one text of ``INDEX KEY`` lines (pure functions): what
the pillar secret holds, what ``hactl keystone rotate`` rewrites and what the minion's
``keystone.fernet_keys`` writes out. Reasons name the line, never a key."""

from __future__ import annotations

import base64
import binascii
import re

INDEX = re.compile(r"^(0|[1-9][0-9]{0,5})\Z")
_KEY = re.compile(r"[A-Za-z0-9_-]{43}=")


def fernet_key(key: str) -> bool:
    """Whether ``key`` is what Keystone accepts: URL-safe base64 of exactly 32 bytes."""
    if not _KEY.fullmatch(key):
        return False
    try:
        return len(base64.urlsafe_b64decode(key)) == 32
    except (binascii.Error, ValueError):
        return False


def parse(text: str) -> dict[int, str]:
    """``INDEX KEY`` lines -> {index: key}: a staged key (0) and a primary at least, every key
    a Fernet key; ValueError naming the line otherwise."""
    keys: dict[int, str] = {}
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not INDEX.match(parts[0]):
            raise ValueError(f"line {no}: not 'INDEX KEY'")
        index, key = int(parts[0]), parts[1]
        if index in keys:
            raise ValueError(f"line {no}: index {index} twice")
        if not fernet_key(key):
            raise ValueError(
                f"line {no}: key {index} is not a Fernet key (URL-safe base64 of 32 bytes)"
            )
        keys[index] = key
    if 0 not in keys or len(keys) < 2:
        raise ValueError("a repository has a staged key (index 0) and a primary")
    return keys


def render(keys: dict[int, str]) -> str:
    """The text form: one ``INDEX KEY`` line per key, by index."""
    return "".join(f"{i} {keys[i]}\n" for i in sorted(keys))


__all__ = ["INDEX", "fernet_key", "parse", "render"]
