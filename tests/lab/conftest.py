"""The lab tier: one real lab (3 controllers in namespaces) for the whole session. Root."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hactl.lab import lab as L
from hactl.lab.baseline import wait_baseline

REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the recovery figures the lab tests measured (also in docs/recovery.md)."""
    if REPORT:
        terminalreporter.section("hactl lab: measured recovery")
        for line in REPORT:
            terminalreporter.write_line(line)


def report(line: str) -> None:
    """Record one measured figure."""
    REPORT.append(line)
    print(line)


def _missing() -> str:
    if os.geteuid() != 0:
        return "needs root"
    for prog in ("haproxy", "keepalived", "mariadbd", "rabbitmq-server", "nft", "rsync"):
        if not (shutil.which(prog) or shutil.which(prog, path="/usr/sbin:/sbin")):
            return f"{prog} missing (scripts/install.sh installs it)"
    return ""


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[L.Lab]:
    """A fresh lab per test module (subnet 10.99.1, or $HACTL_LAB_SUBNET; its own prefix), torn down after it: a
    fault one module injects can never leak into another's measurement. A module that sets
    ``LAB_SUPERVISE = True`` gets minions that restart dead daemons themselves; one that sets
    ``LAB_COMPONENTS`` gets only those daemons (a lab without Galera and RabbitMQ is up in a
    quarter of the time)."""
    if why := _missing():
        pytest.skip(why)
    folder = Path(tempfile.mkdtemp(prefix="hactl-labtest-"))
    shutil.rmtree(folder)
    the_lab = L.up(
        folder,
        3,
        set(getattr(request.module, "LAB_COMPONENTS", L.COMPONENTS)),
        subnet=os.environ.get("HACTL_LAB_SUBNET", "10.99.1"),  # another /24: a second run
        prefix=f"hl{os.getpid() % 1000}",
        say=report,
        supervise=bool(getattr(request.module, "LAB_SUPERVISE", False)),
        resync=float(getattr(request.module, "LAB_RESYNC", 30.0)),
    )
    try:
        yield the_lab
    finally:
        L.teardown(the_lab, say=report)


@pytest.fixture(autouse=True)
def baseline(request: pytest.FixtureRequest) -> None:
    """Before each test of a module that uses the lab: the checked reset to the healthy
    baseline (every VIP on one node, every daemon running, Galera Synced, every server UP,
    no partition, no yield). hactl's own repair is what brings it back; a test starting on a
    lab the previous one left broken fails here, naming what is wrong, instead of measuring it.
    A module sets ``LAB_BASELINE = False`` when its tests run on a deliberately broken lab."""
    if "lab" not in request.fixturenames or not getattr(request.module, "LAB_BASELINE", True):
        return
    the_lab = request.getfixturevalue("lab")
    waited = wait_baseline(the_lab)
    if waited > 1.0:
        print(f"baseline restored after {waited:.1f} s")
