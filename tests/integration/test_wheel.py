"""The built wheel, installed in a throwaway venv (not editable, no checkout on the path):
the CLI, `hactl init`, the shipped rules and states all work from the package alone."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from hactl.auth.store import server_pem
from tests.support.keystone_keys import ENV as KEYSTONE_ENV

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False, env=env
    )
    assert res.returncode == 0, (argv, res.stdout[-2000:], res.stderr[-2000:])
    return res.stdout


def test_wheel_in_a_fresh_venv(tmp_path: Path) -> None:
    """pip install the wheel -> --version, python -m hactl, init SITE, reactors check,
    render SITE/states; the embedded server's binary is an extra, and its absence is one line."""
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(wheels)],
        tmp_path,
    )
    [wheel] = wheels.glob("hactl-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        top = whl.read(next(n for n in names if n.endswith("top_level.txt"))).decode().split()
    assert top == ["hactl"]  # no top-level master or minion package
    assert all(n.startswith(("hactl/", "hactl-")) for n in names)  # package and dist-info
    assert "hactl/master/reactor/rules/engine.py" in names and "hactl/data/states/top.yaml" in names
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    _run([str(venv / "bin/pip"), "install", "-q", str(wheel)], tmp_path)
    hactl = str(venv / "bin/hactl")
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HACTL_HAPROXY_STATS_PASSWORD": "a-long-stats-secret",
        "HACTL_RABBITMQ_MONITOR_PASSWORD": "a-long-monitor-secret",
        "HACTL_RABBITMQ_OPENSTACK_PASSWORD": "a-long-openstack-secret",
        "HACTL_RABBITMQ_COOKIE": "wheelcookie0123456789",
        **KEYSTONE_ENV,
        "HACTL_HAPROXY_EXTERNAL_PEM": server_pem(["203.0.113.100"])[1].decode(),
    }
    elsewhere = tmp_path / "elsewhere"  # never the checkout: nothing imported from it
    elsewhere.mkdir()
    assert _run([hactl, "--version"], elsewhere, env).startswith("hactl ")
    assert _run([str(venv / "bin/python"), "-m", "hactl", "--version"], elsewhere, env)
    _run([hactl, "init", str(tmp_path / "site")], elsewhere, env)
    assert "rule(s) OK" in _run(
        [hactl, "reactors", "check", str(tmp_path / "site/reactors")], elsewhere, env
    )
    rendered = _run(
        [hactl, "render", str(tmp_path / "site/states"), "--minion", "ctl1"], elsewhere, env
    )
    assert "vrrp_instance VI_INTERNAL" in rendered and "listen galera" in rendered
    where = _run(
        [str(venv / "bin/python"), "-c", "import hactl; print(hactl.__file__)"], elsewhere, env
    )
    assert str(venv) in where and str(ROOT) not in where
    res = subprocess.run(
        [hactl, "--data-dir", str(tmp_path / "d"), "master", "--port", "-1"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**env, "PATH": f"{venv / 'bin'}:/nonexistent"},
    )
    assert res.returncode == 2 and "hactl[server]" in res.stderr, res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert os.access(hactl, os.X_OK)
