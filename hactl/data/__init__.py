"""The states and rules hactl ships, found through the installed package.

The repository keeps them at the top level (``states/``, ``reactors/``); the package map in
``setup.py`` puts them under ``hactl/data/`` in the wheel. An editable install (a checkout)
reads the repository's folders, next to the package. A ``pip install`` or ``pipx install``
user has the shipped rules and states (``hactl lab``, ``hactl apply "$(hactl data states)"``)
without a checkout.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# a checkout's top level: hactl/data/__init__.py -> the repository
_CHECKOUT = Path(__file__).resolve().parents[2]


def shipped(name: str) -> Path:
    """The folder of the shipped ``states``, ``reactors`` or ``systemd`` units."""
    if name not in ("states", "reactors", "systemd"):
        raise ValueError(f"no shipped folder {name!r}")
    packaged = Path(str(resources.files(__name__) / name))
    if packaged.is_dir() or not (_CHECKOUT / name).is_dir():
        return packaged  # the wheel's copy (or the error of a missing one, named by path)
    return _CHECKOUT / name


def states_dir() -> Path:
    """The shipped state tree."""
    return shipped("states")


def reactors_dir() -> Path:
    """The shipped reactor rules."""
    return shipped("reactors")
