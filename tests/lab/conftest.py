"""The lab tier: real labs (3 controllers in namespaces), one shared by the modules that can
share it, each test starting from the checked healthy baseline. Root."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.lab.baseline import wait_baseline
from hactl.lab.bus import LAB_MASTERS
from hactl.lab.net import LabError

REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the recovery figures the lab tests measured (also in docs/recovery.md)."""
    if REPORT:
        terminalreporter.section("hactl lab: measured recovery")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A lab test that failed gets the lab's story beside its assertion (the trail's
    decisions, the alerts, the brokers' start/stop/pause lines since 30 s before it started),
    read while the lab still runs: CI keeps nothing else of a lab once it is torn down."""
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]  # pluggy's result of the wrapped hook
    the_lab = getattr(item, "funcargs", {}).get("lab")
    if rep.when != "call" or not rep.failed or not isinstance(the_lab, L.Lab):
        return
    from tests.lab.story import story

    try:
        text = story(the_lab, call.start - 30)
    except Exception as e:  # the story is best effort: never hide the failure
        text = f"(the lab's story could not be read: {type(e).__name__}: {e})"
    rep.sections.append(("hactl lab: what happened around the failure", text))


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


def _config(module: object) -> tuple[frozenset[str], bool, float]:
    """What a module's lab is built with: its daemons, supervision, the minions' resync."""
    return (
        frozenset(getattr(module, "LAB_COMPONENTS", L.COMPONENTS)),
        bool(getattr(module, "LAB_SUPERVISE", False)),
        # the minions' periodic report: 10 s (30 s in production) so that level-triggered
        # repairs and the checked baseline do not wait half a minute between tests
        float(getattr(module, "LAB_RESYNC", 10.0)),
    )


#: the configuration (daemons, minions' resync) of the full shared lab
_FULL = (frozenset(L.COMPONENTS), 10.0)


def _shared(module: object) -> bool:
    return bool(getattr(module, "LAB_SHARED", False))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Lab modules that share a lab run one after another (in file order, a ``LAB_LAST``
    module after the others), before the lab modules that build their own: the shared lab is
    built once and torn down once."""
    first = {}
    for i, item in enumerate(items):
        first.setdefault(getattr(item, "module", None), i)

    def rank(pair: tuple[int, pytest.Item]) -> tuple[int, int, int, int, int]:
        i, item = pair
        mod = getattr(item, "module", None)
        lab_mod = "tests/lab/" in str(item.path)
        group = 0 if not lab_mod else (1 if _shared(mod) else 2)
        # shared modules of one lab configuration run together: the full lab's first, then
        # those of a smaller one (supervision alone may differ: it is switched in place)
        config = _config(mod) if group == 1 else None
        smaller = int(config is not None and (config[0], config[2]) != _FULL)
        # LAB_LAST: a shared module that leaves the lab's configuration changed (its rolling
        # apply: every later apply would roll the brokers back) runs after the other shared ones
        last = int(bool(getattr(mod, "LAB_LAST", False))) if group == 1 else 0
        return (group, smaller, last, first[mod] if group else i, i)

    items[:] = [it for _, it in sorted(enumerate(items), key=rank)]


class _SharedLab:
    """The one lab the ``LAB_SHARED`` modules use, built by the first of them."""

    lab: L.Lab | None = None
    config: tuple[frozenset[str], bool, float] | None = None

    @classmethod
    def down(cls) -> None:
        if cls.lab is not None:
            the_lab, cls.lab, cls.config = cls.lab, None, None
            L.teardown(the_lab, say=report)


def _build(config: tuple[frozenset[str], bool, float]) -> L.Lab:
    folder = Path(tempfile.mkdtemp(prefix="hactl-labtest-"))
    shutil.rmtree(folder)
    components, supervise, resync = config
    return L.up(
        folder,
        3,
        set(components),
        subnet=os.environ.get("HACTL_LAB_SUBNET", "10.99.1"),  # another /24: a second run
        prefix=f"hl{os.getpid() % 1000}",
        say=report,
        supervise=supervise,
        resync=resync,
    )


def _rebuild(the_lab: L.Lab, config: tuple[frozenset[str], bool, float]) -> None:
    """Replace a lab an earlier test left broken by a fresh one, in place: the module's
    fixture (and the shared lab's holder) keep the same object."""
    L.teardown(the_lab, say=report, keep_logs=True)  # the broken lab's logs, for its story
    report(f"the broken lab's logs are kept in {the_lab.dir}")
    fresh = _build(config)
    for f in dataclasses.fields(fresh):
        setattr(the_lab, f.name, getattr(fresh, f.name))


def _restore(the_lab: L.Lab) -> None:
    """After a module on the shared lab: the masters it started stopped, the lab's master
    running, no maintenance window left (the next module's baseline check covers the rest)."""
    for name in LAB_MASTERS:
        if name != "master" and d.alive(the_lab.pids.get(name)):
            L.stop_master(the_lab, name)
    if not d.alive(the_lab.pids.get("master")):
        L.start_master(the_lab, "master")
    env = the_lab.cli_env()
    base = [L.HACTL, "--nats", the_lab.nats_url, "maint"]
    res = subprocess.run(
        [*base, "list", "--json"], capture_output=True, text=True, timeout=30, env=env, check=False
    )
    try:
        windows = json.loads(res.stdout)["windows"]
    except (ValueError, KeyError, TypeError):
        windows = []
    for w in windows:
        if isinstance(w, dict) and w.get("active") and w.get("node") and w.get("component"):
            subprocess.run(
                [*base, "off", str(w["node"]), "-c", str(w["component"])],
                capture_output=True,
                timeout=30,
                env=env,
                check=False,
            )


@pytest.fixture(scope="session", autouse=True)
def _shared_lab_down() -> Iterator[None]:
    """The shared lab is torn down at the end of the session whatever happened."""
    try:
        yield
    finally:
        _SharedLab.down()


@pytest.fixture(scope="module", autouse=True)
def _one_lab_at_a_time(request: pytest.FixtureRequest) -> None:
    """A lab module that does not share a lab (zz_down builds its own with ``L.up``, without
    the ``lab`` fixture) starts with no shared lab left up: one lab at a time, and nothing of
    the shared one (its Galera datadirs' mounts) counted as its own residue."""
    if "tests/lab/" in str(request.path) and not _shared(request.module):
        _SharedLab.down()


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[L.Lab]:
    """The lab of a test module (subnet 10.99.1, or $HACTL_LAB_SUBNET; its own prefix).

    A module that sets ``LAB_SHARED = True`` runs on the lab the shared modules share (built
    once, kept between them; each test first waits for the checked healthy baseline, so a
    fault one test injects cannot leak into the next one's measurement); any other module
    builds its own and tears it down after it (the shared one is torn down first: one lab at
    a time). ``LAB_SUPERVISE = True``: minions that restart dead daemons themselves (on the
    shared lab: switched on in place, its minions restarted, and off again for the next);
    ``LAB_COMPONENTS``: only those daemons (a lab without Galera and RabbitMQ is up in a
    quarter of the time); ``LAB_RESYNC``: the minions' periodic report."""
    if why := _missing():
        pytest.skip(why)
    config = _config(request.module)
    if _shared(request.module):
        held = _SharedLab.config
        if (
            _SharedLab.lab is not None
            and held is not None
            and held != config
            and (held[0], held[2]) == (config[0], config[2])  # supervision alone differs
        ):
            L.set_supervision(_SharedLab.lab, config[1], say=report)
            _SharedLab.config = held = config
        if _SharedLab.lab is None or held != config:
            _SharedLab.down()
            _SharedLab.lab, _SharedLab.config = _build(config), config
        the_lab = _SharedLab.lab
        try:
            yield the_lab
        finally:
            _restore(the_lab)
        return
    _SharedLab.down()
    the_lab = _build(config)
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
    try:
        waited, wrong = wait_baseline(the_lab)
    except LabError as e:
        # this test fails here, naming what is wrong; the tests after it start on a fresh
        # lab instead of each waiting out the same breakage (one keepalived left dead once
        # cost 18 errors and 27 minutes of CI)
        report(f"baseline before {request.node.name}: {e}; the lab is rebuilt")
        _rebuild(the_lab, _config(request.module))
        raise
    if waited > 1.0:  # what the previous test left, and how long hactl took to repair it
        report(f"baseline before {request.node.name}: {waited:.1f} s for {' | '.join(wrong)}")
