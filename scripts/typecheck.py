"""mypy --strict over the package as the wheel lays it out, reported by git path.

mypy names a module after its folder and has no ``package_dir``: ``master/reactor/rules/engine.py``
would be ``master.reactor.engine`` to it, not the ``hactl.master.reactor.rules.engine`` every import
says. So this assembles the wheel's tree under ``build/typecheck/`` (copies that keep their
modification times, so mypy's cache stays warm), checks it with the project's configuration,
and rewrites each reported path back to the file in git (docs/decisions.md #16).

    python scripts/typecheck.py [extra mypy arguments]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / "build" / "typecheck"
# wheel path -> git path, the package map of setup.py (code only: the data has no Python)
MAP = {"hactl/master/": "master/", "hactl/minion/": "minion/", "hactl/": "hactl/"}
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def assemble() -> Path:
    """The wheel's ``hactl`` package as plain copies (no links: each file has one name)."""
    package = TREE / "hactl"
    shutil.rmtree(TREE, ignore_errors=True)
    shutil.copytree(ROOT / "hactl", package, ignore=_IGNORE)
    for folder in ("master", "minion"):
        shutil.copytree(ROOT / folder, package / folder, ignore=_IGNORE)
    return package


def to_git_path(line: str) -> str:
    """``build/typecheck/hactl/master/x.py:3: error`` -> ``master/x.py:3: error``."""

    def swap(match: re.Match[str]) -> str:
        rest = match.group(1)
        for wheel, git in MAP.items():
            if rest.startswith(wheel):
                return git + rest[len(wheel) :]
        return rest

    return re.sub(r"(?:\S*/)?build/typecheck/(\S+)", swap, line)


def main(argv: list[str]) -> int:
    assemble()
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    cmd += ["--cache-dir", str(ROOT / ".mypy_cache"), *argv, str(TREE.relative_to(ROOT) / "hactl")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    for stream, out in ((proc.stdout, sys.stdout), (proc.stderr, sys.stderr)):
        for line in stream.splitlines():
            print(to_git_path(line), file=out)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
