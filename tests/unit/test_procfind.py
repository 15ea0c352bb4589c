"""Finding a daemon by its command line (minion/procfind.py): the matching rule (pure)."""

from __future__ import annotations

import pytest

from hactl.minion.procfind import boot_time, matches

pytestmark = pytest.mark.unit

CFG = "/tmp/lab/ctl1/haproxy.cfg"


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["haproxy", "-D", "-f", CFG, "-p", "/run/h.pid"], True),
        (["/usr/sbin/haproxy", "-D", "-f", CFG, "-sf", "41"], True),  # by name or by path
        (["haproxy", "-D", "-f", "/tmp/lab/ctl2/haproxy.cfg"], False),  # another node's
        (["/usr/sbin/haproxy", "-c", "-f", "/tmp/lab/ctl1/.haproxy.cfg.x.hactl"], False),
        (["bash", "-c", f"haproxy -D -f {CFG}"], False),  # a shell naming it is not it
        (["haproxy-wrapper", "-D", "-f", CFG], False),
        ([], False),
    ],
)
def test_a_daemon_is_its_program_and_arguments(argv: list[str], want: bool) -> None:
    """The program by path or name, every other word an argument; a check of a staged copy, a
    shell line naming it and another node's copy are not the daemon."""
    assert matches(argv, ["haproxy", "-D", "-f", CFG]) is want


def test_boot_time_is_read_from_proc_stats_btime_line() -> None:
    """/proc/stat's ``btime`` line is the boot time; a text without one is refused."""
    assert boot_time("cpu  1 2 3\nintr 5\nbtime 1796600000\nprocesses 9\n") == 1796600000.0
    with pytest.raises(ValueError, match="btime"):
        boot_time("cpu  1 2 3\n")
