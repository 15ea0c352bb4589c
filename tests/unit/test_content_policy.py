"""The minion's content policy: every directive that runs or loads code is refused unless this
minion allowlisted it, and the shipped states pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from hactl.minion.executors.policy import (
    SHIPPED_CHECK,
    ContentPolicy,
    PolicyViolation,
    check_content,
)

GOLDEN = Path(__file__).parent / "golden" / "states"

REFUSED = [
    # keepalived
    ('vrrp_script x {\n    script "/tmp/evil.sh"\n}\n', "script"),
    ("vrrp_script x { script /tmp/evil.sh }\n", "script"),
    ("@ctl1 script /tmp/evil.sh\n", "script"),
    ("    notify /tmp/n.sh\n", "notify"),
    ("    notify_master /tmp/n.sh\n", "notify_master"),
    ("    notify_backup '/tmp/n.sh'\n", "notify_backup"),
    ("    notify_fault /tmp/n.sh\n", "notify_fault"),
    ("    notify_stop /tmp/n.sh\n", "notify_stop"),
    ("    notify_master_rx_lower_pri /tmp/n.sh\n", "notify_master_rx_lower_pri"),
    ("    notify_up /tmp/n.sh\n", "notify_up"),
    ("    notify_down /tmp/n.sh\n", "notify_down"),
    ("    misc_path /tmp/m.sh\n", "misc_path"),
    ("    quorum_up /tmp/q.sh\n", "quorum_up"),
    ("    quorum_down /tmp/q.sh\n", "quorum_down"),
    ("    vrrp_notify_fifo_script /tmp/f.sh\n", "vrrp_notify_fifo_script"),
    ("    lvs_notify_fifo_script /tmp/f.sh\n", "lvs_notify_fifo_script"),
    ("    notify_fifo_script /tmp/f.sh\n", "notify_fifo_script"),
    ("include /var/lib/mysql/evil.conf\n", "include"),
    ("$S=script /tmp/evil.sh\n", "definitions"),
    ('track_file t {\n    file "/etc/ld.so.preload"\n    init_file 0\n}\n', "track file"),
    ('track_file t { file "/run/hactl/../../etc/shadow" }\n', "track file"),
    ('track_file t { file "/run/hactl/sub/x" }\n', "track file"),
    ('track_file t {\n    file "/run/hactl/yield_X"\n    init_file 0 overwrite\n}\n', "overwrite"),
    ("~SEQ(i, 1, 3)\n", "definitions"),
    # HAProxy
    ("global\n    lua-load /tmp/evil.lua\n", "lua-load"),
    ("global\n    lua-load-per-thread /tmp/evil.lua\n", "lua-load-per-thread"),
    ("global\n    lua-prepend-path /tmp/?.lua\n", "lua-prepend-path"),
    ("global\n    external-check\n", "external-check"),
    ("backend b\n    option external-check\n", "option external-check"),
    ("backend b\n    external-check command /tmp/c.sh\n", "external-check"),
    ("program evil\n    command /tmp/evil.sh\n", "program"),
    ("global\n    insecure-fork-wanted\n", "insecure-fork-wanted"),
    ("global\n    insecure-setuid-wanted\n", "insecure-setuid-wanted"),
    ("global\n    ssl-engine evil\n", "ssl-engine"),
    ("global\n    ssl-provider-path /tmp\n", "ssl-provider-path"),
    ('global\n    "${X}" /tmp/evil.lua\n', "literal"),
    # MariaDB / Galera
    ("[mysqld]\nwsrep_notify_cmd=/tmp/n.sh\n", "wsrep_notify_cmd"),
    ("[mysqld]\nwsrep-notify-cmd = /tmp/n.sh\n", "wsrep_notify_cmd"),
    ("[mysqld]\nloose-wsrep_notify_cmd=/tmp/n.sh\n", "wsrep_notify_cmd"),
    ("[mysqld]\nwsrep_notify=/tmp/n.sh\n", "wsrep_notify_cmd"),
    ("[mysqld]\nplugin_load_add=evil.so\n", "plugin_load"),
    ("[mysqld]\nplugin-load=evil.so\n", "plugin_load"),
    ("[mysqld]\nplugin_dir=/tmp\n", "plugin_dir"),
    ("[mysqld]\ninit_file=/tmp/grant.sql\n", "init_file"),
    ("[mysqld_safe]\nmalloc-lib=/tmp/evil.so\n", "malloc_lib"),
    ("[mysqld_safe]\nledir=/tmp\n", "ledir"),
    ("[mysqld_safe]\nmysqld=/tmp/evil\n", "mysqld"),
    ("!include /var/lib/mysql/x.cnf\n", "!include"),
    ("!includedir /var/lib/mysql\n", "!includedir"),
    ("[mysqld]\nwsrep_provider=/tmp/evil.so\n", "wsrep_provider"),
    ("[mysqld]\nwsrep_sst_method=../../tmp/evil\n", "wsrep_sst_method"),
    ("[mysqld]\nuser=root\n", "user"),
]


@pytest.mark.parametrize(("content", "word"), REFUSED, ids=[w for _, w in REFUSED])
def test_each_exec_directive_is_refused(content: str, word: str) -> None:
    """Each directive that runs or loads code is refused, naming it and the line."""
    with pytest.raises(PolicyViolation) as info:
        check_content(content, ContentPolicy())
    assert word in str(info.value) and info.value.line >= 1


def test_allowlisted_programs_and_values_pass() -> None:
    """The minion's own allowlist lets its programs and values through (and only those)."""
    policy = ContentPolicy(programs=frozenset({"/usr/local/bin/notify.sh ok"}))
    check_content('notify_master "/usr/local/bin/notify.sh ok"\n', policy)
    with pytest.raises(PolicyViolation):
        check_content('notify_master "/usr/local/bin/notify.sh ok; id"\n', policy)
    check_content(f'script "{SHIPPED_CHECK}"\n', ContentPolicy())
    track = 'track_file t {\n    file "/srv/lab/run/yield_VI_1"\n    init_file 0\n}\n'
    with pytest.raises(PolicyViolation):
        check_content(track, ContentPolicy())
    check_content(track, ContentPolicy(track_dirs=frozenset({"/srv/lab/run"})))
    check_content(
        "[mysqld]\nwsrep_provider=/usr/lib/galera/libgalera_smm.so\nuser=mysql\n"
        "wsrep_sst_method=rsync\nwsrep_provider_options=gcache.size=64M\n",
        ContentPolicy(),
    )


def test_ordinary_lines_are_not_refused() -> None:
    """Comments, JSON and ordinary directives that merely contain a word are accepted."""
    text = (
        "# notify_master /tmp/x\n! script /tmp/x\nuserlist admins\n"
        '{"users": [{"name": "script"}]}\nscript_user root\n'
    )
    check_content(text, ContentPolicy())


@pytest.mark.parametrize(
    "path",
    sorted(p for p in GOLDEN.rglob("*") if p.is_file()),
    ids=lambda p: str(p.relative_to(GOLDEN)),
)
def test_the_shipped_states_pass_the_default_policy(path: Path) -> None:
    """Every config the shipped states render passes a default minion's policy."""
    check_content(path.read_bytes(), ContentPolicy())
