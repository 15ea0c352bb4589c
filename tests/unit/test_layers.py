"""The layers point one way, proven from the source (every module's imports parsed, none
imported): the core imports nothing above it; master and minion never import each other;
only the CLI and the lab sit on top. And the package is one namespace: no top-level
``master`` or ``minion`` package in the wheel, and no second name for any file."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HACTL = ROOT / "hactl"
ABOVE_CORE = ("hactl.master", "hactl.minion", "hactl.cli", "hactl.lab")


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by one file (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.add(node.module)
    return found


def _layer(folder: Path, package: str) -> dict[str, set[str]]:
    return {f"{package}/{p.relative_to(folder)}": _imports(p) for p in folder.rglob("*.py")}


def _offenders(modules: dict[str, set[str]], forbidden: tuple[str, ...]) -> list[str]:
    bad = [
        (m, i)
        for m, imps in modules.items()
        for i in imps
        if i.startswith(forbidden) or i.split(".")[0] in ("master", "minion")
    ]
    return sorted(f"{m} imports {i}" for m, i in bad)


def test_the_core_imports_nothing_above_it() -> None:
    """wire, bus, auth, errors, config, log, schema, ...: no master, minion, CLI or lab."""
    core = {
        name: imps
        for name, imps in _layer(HACTL, "hactl").items()
        if not name.startswith(("hactl/master/", "hactl/minion/", "hactl/cli/", "hactl/lab/"))
        and name != "hactl/__main__.py"  # `python -m hactl`: the CLI's entry, on top like it
    }
    assert len(core) > 20  # the walk found the core
    assert _offenders(core, ABOVE_CORE) == []
    planted = {
        "hactl/errors.py": {"hactl.master.reactor.view.cluster"},
        "hactl/x.py": {"minion.agent"},
    }
    assert len(_offenders(planted, ABOVE_CORE)) == 2  # the check itself sees a violation


def test_master_and_minion_never_import_each_other_or_the_cli() -> None:
    """The master and the minion are siblings on the core; the CLI and lab sit on top."""
    master = _layer(ROOT / "master", "master")
    minion = _layer(ROOT / "minion", "minion")
    assert _offenders(master, ("hactl.minion", "hactl.cli", "hactl.lab")) == []
    assert _offenders(minion, ("hactl.master", "hactl.cli", "hactl.lab")) == []


def test_one_name_per_file() -> None:
    """No symlinks in the tree; the package map (setup.py) makes master/ and minion/ the
    subpackages hactl.master and hactl.minion, and a master module's file is its git path."""
    skip = {".git", ".venv", "build", "lab-run", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
    links = [
        p for p in ROOT.rglob("*") if p.is_symlink() and not skip & set(p.relative_to(ROOT).parts)
    ]
    assert links == []
    tree = ast.parse((ROOT / "setup.py").read_text())
    maps = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("CODE", "DATA")
    }
    assert maps["CODE"] == {"hactl.master": "master", "hactl.minion": "minion"}
    assert set(maps["DATA"].values()) == {"states", "reactors"}
    import hactl.master.reactor.rules.engine as engine
    import hactl.minion.agent as agent

    assert Path(engine.__file__).resolve() == ROOT / "master/reactor/rules/engine.py"
    assert Path(agent.__file__).resolve() == ROOT / "minion/agent.py"


def test_the_bus_is_sealed() -> None:
    """Only hactl/bus imports nats-py (docs/decisions.md #40): everything else speaks Bus, Kv
    and Delivery, and catches hactl's BusError."""
    everything = {
        **_layer(HACTL, "hactl"),
        **_layer(ROOT / "master", "master"),
        **_layer(ROOT / "minion", "minion"),
    }
    outside = {m: imps for m, imps in everything.items() if not m.startswith("hactl/bus/")}
    assert len(outside) > 100
    offenders = sorted(
        f"{m} imports {i}" for m, imps in outside.items() for i in imps if i.split(".")[0] == "nats"
    )
    assert offenders == []
