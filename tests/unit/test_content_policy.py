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
    format_of,
    haproxy,
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
    ('global\n    "${X}" /tmp/evil.lua\n', "environment"),
    # HAProxy's own lexing: escapes, quotes and comments hide nothing (Trust III)
    ("global\n    \\x6cua-load x.lua\n", "lua-load"),
    ("global\n    # tuned \\\n    lua-load x.lua\n", "lua-load"),
    ('global\n    "lua"-load x.lua\n', "lua-load"),
    ("global\n    lu'a-lo'ad x.lua\n", "lua-load"),
    ("global\n\tmaxconn 1\r    lua-load x.lua\n", "lua-load"),
    # keepalived: a tab is whitespace too
    ("vrrp_instance V {\n    notify_master\t/tmp/n.sh\n}\n", "notify_master"),
    ("vrrp_instance V {\n    notify_master\x0b/tmp/n.sh\n}\n", "notify_master"),
    # MariaDB: a comment ending in a backslash does not continue
    ("[mysqld]\n# tuned \\\nplugin_load_add=evil.so\n", "plugin_load"),
    ("[sst]\ncompressor=id\n", "[sst]"),
    ("[client]\nplugin-dir=/tmp\n", "[client]"),
    ("[mysqld]\nbasedir=/tmp/evil\n", "basedir"),
    # MariaDB / Galera
    ("[mysqld]\nwsrep_notify_cmd=/tmp/n.sh\n", "wsrep_notify_cmd"),
    ("[mysqld]\nwsrep-notify-cmd = /tmp/n.sh\n", "wsrep_notify_cmd"),
    ("[mysqld]\nloose-wsrep_notify_cmd=/tmp/n.sh\n", "wsrep_notify_cmd"),
    ("[mysqld]\nwsrep_notify=/tmp/n.sh\n", "wsrep_notify_cmd"),
    ("[mysqld]\nplugin_load_add=evil.so\n", "plugin_load"),
    ("[mysqld]\nplugin-load=evil.so\n", "plugin_load"),
    ("[mysqld]\nplugin_dir=/tmp\n", "plugin_dir"),
    ("[mysqld]\ninit_file=/tmp/grant.sql\n", "init_file"),
    ("[mysqld_safe]\nmalloc-lib=/tmp/evil.so\n", "mysqld_safe"),
    ("[mysqld]\nmalloc-lib=/tmp/evil.so\n", "malloc_lib"),
    ("[mysqld_safe]\nledir=/tmp\n", "mysqld_safe"),
    ("[mysqld]\nledir=/tmp\n", "ledir"),
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


#: (path, check, content, word): refused in a file that daemon reads, by its allowlist
REFUSED_STRICT = [
    (
        "/etc/haproxy/haproxy.cfg",
        "haproxy",
        "global\n    stats socket ipv4@0.0.0.0:9999 level admin\n",
        "unix path",
    ),
    ("/etc/haproxy/haproxy.cfg", "haproxy", "global\n    stats socket 0.0.0.0:9999\n", "unix path"),
    ("/etc/haproxy/haproxy.cfg", "haproxy", "global\n    pidfile /etc/passwd\n", "pidfile"),
    ("/etc/haproxy/haproxy.cfg", "haproxy", "global\n    pidfile /etc/cron.d/x.pid\n", "pidfile"),
    (
        "/etc/haproxy/haproxy.cfg",
        "haproxy",
        "frontend f\n    http-request return status 200 file /etc/shadow\n",
        "file",
    ),
    (
        "/etc/haproxy/haproxy.cfg",
        "haproxy",
        "frontend f\n    http-request return status 200 lf-file /etc/shadow\n",
        "lf-file",
    ),
    (
        "/etc/haproxy/haproxy.cfg",
        "haproxy",
        "defaults\n    errorfile 503 /etc/shadow\n",
        "errorfile",
    ),
    ("/etc/haproxy/haproxy.cfg", "haproxy", "frontend f\n    acl a src -f /etc/shadow\n", "-f"),
    (
        "/etc/haproxy/haproxy.cfg",
        "haproxy",
        "frontend f\n    http-request set-var(txn.x) req.hdr(h),map(/etc/shadow)\n",
        "map",
    ),
    (
        "/etc/haproxy/haproxy.cfg",
        "haproxy",
        "backend b\n    server s /run/docker.sock\n",
        "local socket",
    ),
    (
        "/etc/haproxy/haproxy.cfg",
        "haproxy",
        "backend b\n    server s unix@/run/mysqld/x.sock\n",
        "local socket",
    ),
    ("/etc/haproxy/haproxy.cfg", "haproxy", "frontend f\n    bind /etc/passwd\n", "bind socket"),
    (
        "/etc/haproxy/haproxy.cfg",
        "haproxy",
        "frontend f\n    bind :443 ssl crt /root/k.pem\n",
        "crt",
    ),
    ("/etc/haproxy/haproxy.cfg", "haproxy", "global\n    setenv X y\n", "allowlist"),
    ("/etc/haproxy/haproxy.cfg", "haproxy", ".if defined(X)\n.endif\n", "outside a section"),
    ("/etc/haproxy/haproxy.cfg", "haproxy", "global\n    maxconn 1\x0c\n", "control"),
    ("/etc/haproxy/haproxy.cfg", "haproxy", "global\n    maxconn 1 \\\n", "backslash"),
    ("/etc/haproxy/haproxy.cfg", "haproxy", "frontend f\n    filter spoe config /x\n", "allowlist"),
    ("/srv/x/haproxy.cfg", None, "global\n    pidfile /etc/passwd\n", "pidfile"),
    (
        "/etc/keepalived/keepalived.conf",
        "keepalived",
        "global_defs {\n    vrrp_notify_fifo /etc/passwd\n}\n",
        "track file",
    ),
    (
        "/etc/keepalived/keepalived.conf",
        "keepalived",
        "virtual_server 1.2.3.4 80 {\n}\n",
        "allowlist",
    ),
    (
        "/etc/keepalived/keepalived.conf",
        "keepalived",
        "vrrp_instance V {\n    priority $P\n}\n",
        "definitions",
    ),
    (
        "/etc/keepalived/keepalived.conf",
        "keepalived",
        "vrrp_instance V {\n    virtual_ipaddress {\n        notify /x\n    }\n}\n",
        "notify",
    ),
    (
        "/etc/mysql/mariadb.conf.d/60-galera.cnf",
        None,
        "[mysqld]\nwsrep_sst_meth=rsync\n",
        "abbreviation",
    ),
    (
        "/etc/mysql/mariadb.conf.d/60-galera.cnf",
        None,
        "[mysqld]\nwsrep_node_name=a;id\n",
        "plain set",
    ),
    ("/etc/mysql/mariadb.conf.d/60-galera.cnf", None, "[mysqld]\ndatadir=$(id)\n", "plain set"),
    (
        "/etc/mysql/mariadb.conf.d/60-galera.cnf",
        None,
        "[mysqld]\nwsrep_sst_donor=`id`\n",
        "plain set",
    ),
    ("/etc/mysql/mariadb.conf.d/60-galera.cnf", None, "datadir=/x\n", "outside a group"),
    ("/etc/mysql/mariadb.conf.d/60-galera.cnf", None, "[mariabackup]\nx=1\n", "[mariabackup]"),
    ("/etc/mysql/mariadb.conf.d/60-galera.cnf", None, "[mysqld-foo]\nx=1\n", "[mysqld-foo]"),
]


@pytest.mark.parametrize(
    ("path", "check", "content", "word"),
    REFUSED_STRICT,
    ids=[f"{c or p.rsplit('.', 1)[1]}-{w}-{i}" for i, (p, c, _, w) in enumerate(REFUSED_STRICT)],
)
def test_a_daemons_file_is_read_against_its_allowlist(
    path: str, check: str | None, content: str, word: str
) -> None:
    """A file a daemon reads (by check name or path) passes only its allowlist: no admin
    socket on the network, no pid file or served file outside the minion's folders, no
    keyword or option hactl does not know, no character a shell could read."""
    with pytest.raises(PolicyViolation) as info:
        check_content(content, ContentPolicy(), path=path, check=check)
    assert word in str(info.value), str(info.value)


def test_haproxy_lexing_matches_haproxys_parse_line() -> None:
    """Escapes, quotes and comments give the words HAProxy's parse_line gives."""
    assert haproxy.words(1, r"\x66oo bar") == ["foo", "bar"]
    assert haproxy.words(1, "a\\ b c") == ["a b", "c"]
    assert haproxy.words(1, '"qu"ux y') == ["quux", "y"]
    assert haproxy.words(1, "e$HOME f") == ["e$HOME", "f"]
    assert haproxy.words(1, "'$HOME' y") == ["$HOME", "y"]
    assert haproxy.words(1, "\\#x") == ["#x"]
    assert haproxy.words(1, "foo#bar x") == ["foo"]
    assert haproxy.words(1, "g\tq h\x0bi") == ["g", "q", "h", "i"]
    assert haproxy.words(1, "stats realm HAProxy\\ Statistics") == [
        "stats",
        "realm",
        "HAProxy Statistics",
    ]
    with pytest.raises(PolicyViolation):
        haproxy.words(1, '"${HOME}" y')


def test_the_format_is_the_minions_choice() -> None:
    """The check name decides first, then the path globs; other files get the every-file
    rules only."""
    policy = ContentPolicy()
    assert format_of(policy, "/srv/x/evil.conf", "haproxy") == "haproxy"
    assert format_of(policy, "/etc/haproxy/haproxy.cfg", None) == "haproxy"
    assert format_of(policy, "/lab/ctl1/etc/keepalived.conf", None) == "keepalived"
    assert format_of(policy, "/lab/ctl1/etc/galera.cnf", None) == "mariadb"
    assert format_of(policy, "/etc/rabbitmq/rabbitmq.conf", None) is None
    custom = ContentPolicy(formats=frozenset({"/opt/lb/*.conf=haproxy"}))
    assert format_of(custom, "/opt/lb/x.conf", None) == "haproxy"


def test_operator_keywords_extend_the_allowlist_but_never_code() -> None:
    """content_policy.keywords adds a keyword; a keyword that runs code stays refused."""
    text = "frontend f\n    filter compression\n"
    with pytest.raises(PolicyViolation):
        check_content(text, ContentPolicy(), check="haproxy")
    check_content(text, ContentPolicy(keywords=frozenset({"haproxy:filter"})), check="haproxy")
    evil = "global\n    lua-load /x.lua\n"
    with pytest.raises(PolicyViolation, match="runs or loads code"):
        check_content(
            evil, ContentPolicy(keywords=frozenset({"haproxy:lua-load"})), check="haproxy"
        )


@pytest.mark.parametrize(
    "path",
    sorted(p for p in GOLDEN.rglob("*") if p.is_file()),
    ids=lambda p: str(p.relative_to(GOLDEN)),
)
def test_the_shipped_states_pass_the_default_policy(path: Path) -> None:
    """Every config the shipped states render passes a default minion's policy, each read
    by its daemon's allowlist (the golden tree mirrors the real paths)."""
    real = "/" + str(path.relative_to(GOLDEN)).split("/", 1)[1]
    check = "haproxy" if real.endswith("haproxy.cfg") else None
    check_content(path.read_bytes(), ContentPolicy(), path=real, check=check)
