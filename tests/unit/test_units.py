"""The shipped systemd units: installed with this hactl as ExecStart, clean for systemd."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hactl.cli.app import app


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_install_units_writes_units_systemd_accepts(tmp_path: Path) -> None:
    """`hactl install-units --dir D` writes both units; `systemd-analyze verify` has nothing to
    say about them; a second run changes nothing; a unit edited by hand is not overwritten."""
    runner = CliRunner()
    first = runner.invoke(app, ["install-units", "--dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    units = sorted(p.name for p in tmp_path.glob("*.service"))
    assert units == ["hactl-master.service", "hactl-minion.service"]
    for unit in units:
        text = (tmp_path / unit).read_text()
        assert "Type=notify" in text and "WatchdogSec=" in text and "/usr/local/bin" not in text
        res = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # what it says of other units on this box (Debian's keystone.service names itself in
        # After=) is not about ours
        ours = [
            line
            for line in res.stderr.splitlines()
            if line.strip() and not re.match(r"(?!hactl-)[\w@.-]+\.service: ", line)
        ]
        assert res.returncode == 0 and not ours, res.stderr
        score = subprocess.run(
            ["systemd-analyze", "security", "--offline=yes", str(tmp_path / unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        level = float(score.stdout.rsplit("Overall exposure level for", 1)[1].split()[1])
        assert level <= (4.0 if "master" in unit else 6.0), score.stdout[-300:]
    again = runner.invoke(app, ["install-units", "--dir", str(tmp_path), "--json"])
    assert again.exit_code == 0 and '"written":[]' in again.output
    (tmp_path / units[0]).write_text("[Service]\n")
    refused = runner.invoke(app, ["install-units", "--dir", str(tmp_path)])
    assert refused.exit_code == 2 and "--force" in refused.output


def test_init_copies_an_editable_site_and_refuses_a_full_folder(tmp_path: Path) -> None:
    """`hactl init DIR`: the shipped states (with their pillar) and rules as real files; a
    second init into the same folder is refused (exit 2), nothing overwritten."""
    site = tmp_path / "site"
    runner = CliRunner()
    first = runner.invoke(app, ["init", str(site), "--json"])
    assert first.exit_code == 0, first.output
    assert (site / "states/pillar/site.yaml").is_file() and not (site / "states").is_symlink()
    assert (site / "reactors/galera.yaml").is_file()
    (site / "states/pillar/site.yaml").write_text("# mine\n")
    again = runner.invoke(app, ["init", str(site)])
    assert again.exit_code == 2 and "not empty" in again.output
    assert (site / "states/pillar/site.yaml").read_text() == "# mine\n"
