"""The states and rules hactl ships, found through the installed package.

In the repository ``hactl/data/states`` and ``hactl/data/reactors`` are symlinks to the
top-level ``states/`` and ``reactors/`` folders; the wheel carries the files themselves, so a
``pip install`` or ``pipx install`` user has the shipped rules and states (``hactl lab``,
``hactl apply "$(hactl data states)"``) without a checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped(name: str) -> Path:
    """The folder of the shipped ``states``, ``reactors`` or ``systemd`` units."""
    if name not in ("states", "reactors", "systemd"):
        raise ValueError(f"no shipped folder {name!r}")
    return Path(str(resources.files(__name__) / name))


def states_dir() -> Path:
    """The shipped state tree."""
    return shipped("states")


def reactors_dir() -> Path:
    """The shipped reactor rules."""
    return shipped("reactors")
