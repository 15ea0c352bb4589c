"""The minion's supervision policy (Pacemaker's): restart at once, then back off, give up at
the threshold within the window, try again when the window passes or someone starts it, never
start what never ran; on a fake clock and fake services (no I/O)."""

from __future__ import annotations

import asyncio

import pytest

from hactl.errors import ConfigError
from hactl.minion import supervisor as sup
from hactl.minion.config import parse_config
from hactl.minion.executors.base import ExecContext, ServiceCommands
from hactl.wire.beacons import check_items
from hactl.wire.maint import Maintenance, encode, maint_key


class Fake:
    """Services that run or not; start brings them up (or fails when told to)."""

    def __init__(self) -> None:
        self.up: dict[str, bool] = {"haproxy": True}
        self.starts: list[float] = []
        self.fail_start = False
        self.now = 1000.0

    async def running(self, ctx: ExecContext, name: str) -> bool:
        return self.up.get(name, False)

    async def action(self, ctx: ExecContext, name: str, action: str) -> tuple[bool, str]:
        self.starts.append(self.now)
        if self.fail_start:
            return False, "exit 1: cannot bind"
        self.up[name] = True
        return True, ""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Fake:
    """The fake services wired in place of the real service commands."""
    f = Fake()
    monkeypatch.setattr(sup, "service_running", f.running)
    monkeypatch.setattr(sup, "service_action", f.action)
    return f


GRACE = 30.0


def _supervisor(
    fake: Fake, threshold: int = 3, window: float = 60.0, grace: float = 0.0
) -> sup.Supervisor:
    policy = sup.SupervisionPolicy(("haproxy",), threshold=threshold, window=window)
    services = {"haproxy": ServiceCommands(start=("x",), start_grace=grace)}
    ctx = ExecContext(minion_id="m", services=services)
    return sup.Supervisor(ctx, policy, clock=lambda: fake.now)


def _at(fake: Fake, s: sup.Supervisor, t: float) -> None:
    fake.now = t
    asyncio.run(s.step())


def test_a_death_is_restarted_at_once_then_with_backoff(fake: Fake) -> None:
    """First death: started in the same check; second: not before 1 s; third: 2 s."""
    s = _supervisor(fake, threshold=5)
    _at(fake, s, 1000.0)  # seen running
    fake.up["haproxy"] = False
    _at(fake, s, 1001.0)
    assert fake.starts == [1001.0] and s.snapshot()["haproxy"]["running"]
    fake.up["haproxy"] = False
    _at(fake, s, 1002.0)  # second death: backoff 1 s
    _at(fake, s, 1002.5)
    assert fake.starts == [1001.0]
    _at(fake, s, 1003.0)
    assert fake.starts == [1001.0, 1003.0]
    fake.up["haproxy"] = False
    _at(fake, s, 1004.0)  # third: 2 s
    _at(fake, s, 1005.0)
    assert len(fake.starts) == 2
    _at(fake, s, 1006.0)
    assert len(fake.starts) == 3


def test_threshold_deaths_in_the_window_give_up_until_it_passes(fake: Fake) -> None:
    """Three deaths within 60 s (threshold 3): left stopped; tried again after the window."""
    s = _supervisor(fake, threshold=3, window=60.0)
    _at(fake, s, 1000.0)
    for t in (1001.0, 1010.0, 1020.0):
        fake.up["haproxy"] = False
        _at(fake, s, t)
        _at(fake, s, t + 1.0)  # after the backoff: started again (until the third death)
    item = s.snapshot()["haproxy"]
    assert item["given_up"] and not item["running"] and len(fake.starts) == 2
    _at(fake, s, 1050.0)
    assert len(fake.starts) == 2  # still inside the window
    _at(fake, s, 1081.0)  # the last death is older than 60 s
    assert len(fake.starts) == 3 and not s.snapshot()["haproxy"]["given_up"]


def test_a_hand_start_clears_given_up(fake: Fake) -> None:
    """An operator starts the given-up service: supervised again from a clean count."""
    s = _supervisor(fake, threshold=1)
    _at(fake, s, 1000.0)
    fake.up["haproxy"] = False
    _at(fake, s, 1001.0)
    assert s.snapshot()["haproxy"]["given_up"] and fake.starts == []
    fake.up["haproxy"] = True
    _at(fake, s, 1002.0)
    assert s.snapshot()["haproxy"] == {
        "running": True,
        "deaths": 0,
        "restarts": 0,
        "given_up": False,
        "last_error": "",
        "suspended": "",
    }


def test_failed_starts_count_and_what_never_ran_is_left_alone(fake: Fake) -> None:
    """A start that fails is a failure; a service never seen running is never started."""
    s = _supervisor(fake, threshold=3)
    fake.up["haproxy"] = False
    _at(fake, s, 1000.0)
    assert fake.starts == []  # never ran since the minion started
    fake.up["haproxy"] = True
    _at(fake, s, 1001.0)
    fake.up["haproxy"], fake.fail_start = False, True
    for t in (1002.0, 1004.0, 1008.0, 1020.0):
        _at(fake, s, t)
    item = s.snapshot()["haproxy"]
    assert item["given_up"] and "cannot bind" in item["last_error"]
    assert check_items("supervisor", s.snapshot()) == ""


def test_a_service_stopped_on_purpose_is_not_a_death(fake: Fake) -> None:
    """service.stop makes the minion forget it: no restart until it runs again."""
    s = _supervisor(fake)
    _at(fake, s, 1000.0)
    s.forget("haproxy")
    fake.up["haproxy"] = False
    _at(fake, s, 1001.0)
    assert fake.starts == []


@pytest.mark.parametrize(
    ("section", "why"),
    [
        ("{services: [nginx]}", "not configured in services"),
        ("{services: [haproxy], threshold: 0}", "threshold must be from 1"),
        ("{services: [haproxy], window: soon}", "window must be int or float"),
        ("{services: [mariadb]}", "never supervised"),
    ],
)
def test_the_supervision_section_is_checked(section: str, why: str) -> None:
    """Unknown services, mariadb, bad numbers: a config error naming supervision."""
    services = "services: {haproxy: {start: [x], pidfile: /p}, mariadb: {start: [y]}}\n"
    with pytest.raises(ConfigError, match=why):
        parse_config(f"id: m\n{services}supervision: {section}\n", "minion.yaml")


def test_the_policy_reaches_the_minion_config() -> None:
    """A valid section is parsed into the frozen policy."""
    cfg = parse_config(
        "id: m\nservices: {haproxy: {start: [x]}}\nsupervision: {services: [haproxy]}\n", "t"
    )
    assert cfg.supervision == sup.SupervisionPolicy(("haproxy",))
    assert isinstance(cfg.services["haproxy"], ServiceCommands)


def test_a_service_under_maintenance_is_left_alone(fake: Fake) -> None:
    """A window on this node's haproxy (or the whole cluster): a death is not restarted; once
    the window is off, it is."""
    windows: dict[str, bytes] = {
        maint_key("m", "haproxy"): encode(Maintenance("m", "haproxy", "swap", since=0.0))
    }

    async def read(key: str) -> bytes | None:
        return windows.get(key)

    policy = sup.SupervisionPolicy(("haproxy",), threshold=5)
    ctx = ExecContext(minion_id="m", maint=read)
    s = sup.Supervisor(ctx, policy, clock=lambda: fake.now)
    _at(fake, s, 1000.0)
    fake.up["haproxy"] = False
    _at(fake, s, 1001.0)
    assert fake.starts == []
    windows.clear()
    windows[maint_key("all", "all")] = encode(Maintenance("all", "all", "freeze", until=1e12))
    _at(fake, s, 1002.0)
    assert fake.starts == []
    windows.clear()
    _at(fake, s, 1003.0)
    assert fake.starts == [1003.0]


def test_planned_work_is_never_fought(fake: Fake) -> None:
    """A restart hactl itself runs (the roll's stop, then start) suspends supervision of
    that service for exactly its duration: the stop is no death, nothing is started behind
    its back, the beacon says so; afterwards it is supervised again."""
    s = _supervisor(fake, threshold=5)
    _at(fake, s, 1000.0)

    async def roll() -> None:
        async with s.ctx.planned.hold("haproxy", "service.restart", running_after=True):
            fake.up["haproxy"] = False  # stopped by the restart
            fake.now = 1001.0
            await s.step()
            assert s.snapshot()["haproxy"]["suspended"] == "service.restart"
            assert check_items("supervisor", s.snapshot()) == ""
            fake.now = 1003.0
            await s.step()
            fake.up["haproxy"] = True  # started by the restart
        fake.now = 1004.0
        await s.step()

    asyncio.run(roll())
    assert fake.starts == [] and s.snapshot()["haproxy"]["deaths"] == 0
    assert s.snapshot()["haproxy"]["suspended"] == "" and s.snapshot()["haproxy"]["running"]
    fake.up["haproxy"] = False  # a real death afterwards is restarted as ever
    _at(fake, s, 1010.0)
    assert fake.starts == [1010.0]


def test_planned_stop_is_left_stopped_and_a_failed_restart_is_restarted(fake: Fake) -> None:
    """After a planned stop the service stays stopped; after a planned restart whose daemon
    does not show it runs, supervision waits out its boot (never a second copy), then
    counts a death and starts it (minion.yaml services.<name>.start_grace)."""
    s = _supervisor(fake, threshold=5, grace=GRACE)
    _at(fake, s, 1000.0)

    async def work(running_after: bool) -> None:
        async with s.ctx.planned.hold("haproxy", "service.x", running_after=running_after):
            fake.up["haproxy"] = False
            await s.step()

    asyncio.run(work(False))
    _at(fake, s, 1001.0)
    assert fake.starts == [] and not s.snapshot()["haproxy"]["running"]
    fake.up["haproxy"] = True
    _at(fake, s, 1002.0)  # started again by hand: supervised again
    asyncio.run(work(True))  # a restart whose daemon is still booting, then never came
    _at(fake, s, 1003.0)
    _at(fake, s, 1003.0 + GRACE - 1)
    assert fake.starts == [], "a second copy while the first may still be booting"
    _at(fake, s, 1003.0 + GRACE + 1)
    assert len(fake.starts) == 1 and s.snapshot()["haproxy"]["deaths"] == 1


def test_a_started_daemon_gets_its_boot_before_a_second_copy(
    fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26's restart storm: a start whose daemon shows it runs only later (a broker's
    pid file) is never followed by a second start within the boot grace; one that never
    shows is a failed start, counted, and started again with the backoff; without a grace
    (keepalived, HAProxy: their pid file is there when start returns) the backoff alone."""
    s = _supervisor(fake, threshold=5, grace=GRACE)
    _at(fake, s, 1000.0)

    async def slow_start(ctx: ExecContext, name: str, action: str) -> tuple[bool, str]:
        fake.starts.append(fake.now)
        return True, ""  # started, but not running yet

    monkeypatch.setattr(sup, "service_action", slow_start)
    fake.up["haproxy"] = False
    _at(fake, s, 1001.0)
    for t in (1002.0, 1005.0, 1010.0, 1001.0 + GRACE - 1):
        _at(fake, s, t)
    assert fake.starts == [1001.0], "a second copy during the first one's boot"
    _at(fake, s, 1001.0 + GRACE + 0.5)  # never showed: a failed start
    assert s.snapshot()["haproxy"]["deaths"] == 2
    _at(fake, s, 1001.0 + GRACE + 2)
    assert len(fake.starts) == 2
    fake.up["haproxy"] = True  # the second one boots
    _at(fake, s, 1001.0 + GRACE + 3)
    assert s.snapshot()["haproxy"]["running"]


def test_cleanup_forgets_the_failures_and_tries_again_now(fake: Fake) -> None:
    """Given up inside its window, a cleanup (Pacemaker's) resets the count and the service is
    started at the next check; an unknown service is a KeyError (refused by the executor)."""
    s = _supervisor(fake, threshold=3, window=60.0)
    _at(fake, s, 1000.0)
    for t in (1001.0, 1010.0, 1020.0):
        fake.up["haproxy"] = False
        _at(fake, s, t)
        _at(fake, s, t + 1.0)
    assert s.snapshot()["haproxy"]["given_up"] and len(fake.starts) == 2
    [reset] = s.cleanup("haproxy")
    assert reset == {
        "service": "haproxy",
        "was": {"deaths": 3, "restarts": 2, "given_up": True},
        "down": True,
    }
    item = s.snapshot()["haproxy"]
    assert not item["given_up"] and item["deaths"] == 0 and item["restarts"] == 0
    _at(fake, s, 1025.0)  # well inside the old window: started now
    assert len(fake.starts) == 3 and s.snapshot()["haproxy"]["running"]
    with pytest.raises(KeyError):
        s.cleanup("nginx")
    assert [r["service"] for r in s.cleanup()] == ["haproxy"]
