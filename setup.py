"""The package map: the repository's top-level folders are subpackages of ``hactl``.

``master/`` is ``hactl.master``, ``minion/`` is ``hactl.minion``, and the shipped ``states/``
and ``reactors/`` are ``hactl/data/states`` and ``hactl/data/reactors`` in the wheel. Each file
has one name on disk (its git path) and one import name; nothing is top level in the wheel but
``hactl`` (docs/decisions.md #16). Everything else about the build is in pyproject.toml.
"""

from __future__ import annotations

from setuptools import find_namespace_packages, find_packages, setup

# import name -> repository folder (the design card's top level)
CODE = {"hactl.master": "master", "hactl.minion": "minion"}
CACHE = ["__pycache__", "*.__pycache__"]
DATA = {"hactl.data.states": "states", "hactl.data.reactors": "reactors"}


def _packages() -> tuple[list[str], dict[str, str]]:
    # namespace discovery: hactl/data/systemd holds unit files and no __init__.py
    packages = find_namespace_packages(include=["hactl", "hactl.*"], exclude=CACHE)
    package_dir = {"hactl": "hactl"}
    for name, folder in CODE.items():
        package_dir[name] = folder
        packages += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]
    for name, folder in DATA.items():
        package_dir[name] = folder
        subs = find_namespace_packages(folder, exclude=CACHE)
        packages += [name, *(f"{name}.{sub}" for sub in subs)]
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={
        "": ["py.typed"],
        "hactl.data.systemd": ["*.service"],
        **{f"hactl.data.{sub}": ["*.yaml", "*.j2"] for sub in ("states", "reactors")},
        **{name: ["*.yaml", "*.j2"] for name in PACKAGES if name.startswith("hactl.data.states.")},
    },
)
