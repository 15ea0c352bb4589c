"""Same-run comparisons of two trees: load every hactl package from the tree that
``HACTL_AB_TREE`` names.

The editable install maps ``hactl.master``, ``hactl.minion`` and ``hactl.data.*`` to the main
checkout whatever ``PYTHONPATH`` says, so a worktree on ``PYTHONPATH`` alone runs its own core
with main's master (docs/performance.md, "A correction"). Usage, from the other tree::

    HACTL_AB_TREE=$PWD PYTHONPATH=/path/to/main/benchmarks/abtree \\
        /path/to/main/.venv/bin/python benchmarks/reactor_latency.py 2000

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; children (the master and
minion a benchmark spawns) inherit the environment, so they load the same tree.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType

_TREE = os.environ.get("HACTL_AB_TREE", "")
_MAP = {
    "hactl": "hactl",
    "hactl.master": "master",
    "hactl.minion": "minion",
    "hactl.data.reactors": "reactors",
    "hactl.data.states": "states",
}


class _TreeFinder:
    """Finds hactl's packages in ``HACTL_AB_TREE`` before any other finder does."""

    @classmethod
    def find_spec(
        cls, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        """The spec of ``fullname`` in the tree (a package of the map, or a module in one)."""
        if fullname in _MAP:
            folder = os.path.join(_TREE, _MAP[fullname])
            init = os.path.join(folder, "__init__.py")
            if os.path.exists(init):
                return importlib.util.spec_from_file_location(
                    fullname, init, submodule_search_locations=[folder]
                )
            spec = ModuleSpec(fullname, None, is_package=True)  # a data folder: namespace
            spec.submodule_search_locations = [folder]
            return spec
        parent = fullname.rpartition(".")[0]
        if parent in _MAP:
            return PathFinder.find_spec(fullname, [os.path.join(_TREE, _MAP[parent])])
        return None


if _TREE:
    sys.meta_path.insert(0, _TreeFinder)
