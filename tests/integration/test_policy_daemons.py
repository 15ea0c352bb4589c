"""The content policy's lexers agree with the daemons' own parsers: for tricky lines, the
keyword HAProxy names in its "unknown keyword" alert is the word our HAProxy lexer gives, and
the options ``my_print_defaults`` (MariaDB's own option-file reader) prints are the ones our
MariaDB reader sees."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hactl.minion.executors.policy import ContentPolicy, PolicyViolation, check_content, haproxy
from hactl.minion.executors.policy.mariadb import _option

pytestmark = pytest.mark.integration

#: lines whose first word is a keyword HAProxy does not know, written every way its
#: parse_line() rewrites: hex and other escapes, quotes joined into the word, comments, blanks
HAPROXY_LINES = [
    r"\x66oo bar",
    r"\x6cua-lo bar",
    '"qu"ux y',
    "'sq'x y",
    r"a\ b c",
    "e$HOME f",
    "'$HOME' y",
    r"\#x",
    "foo#bar x",
    "g\tq",
    "h\x0bi",
    "j\x0ck",
    r"\y",
    r"\\ab",
    r'"\x41\"B" c',
]


def _haproxy_keywords(tmp_path: Path, lines: list[str]) -> dict[int, str]:
    cfg = tmp_path / "probe.cfg"
    cfg.write_text("global\n" + "".join(f"    {line}\n" for line in lines))
    res = subprocess.run(
        ["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30, check=False
    )
    found = {}
    for m in re.finditer(r"probe\.cfg:(\d+)\] : unknown keyword '(.*?)' in 'global'", res.stderr):
        found[int(m.group(1)) - 1] = m.group(2)
    return found


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_lexer_sees_the_keyword_haproxy_sees(tmp_path: Path) -> None:
    """For every tricky line, HAProxy's own alert names the same first word as our lexer."""
    seen = _haproxy_keywords(tmp_path, HAPROXY_LINES)
    assert len(seen) == len(HAPROXY_LINES), seen
    for i, line in enumerate(HAPROXY_LINES, 1):
        assert haproxy.words(i, line)[0] == seen[i], (line, seen[i])


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_reads_the_hidden_lua_load_we_refuse(tmp_path: Path) -> None:
    """The disguised lua-load lines are lua-load to HAProxy (it tries to open the file) and
    to the policy (refused)."""
    for line in (r"\x6cua-load /nonexistent/x.lua", '"lua-"load /nonexistent/x.lua'):
        cfg = tmp_path / "lua.cfg"
        cfg.write_text(f"global\n    {line}\n")
        res = subprocess.run(
            ["haproxy", "-c", "-f", str(cfg)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert "/nonexistent/x.lua" in res.stderr and "Lua" in res.stderr, res.stderr
        with pytest.raises(PolicyViolation, match="lua-load"):
            check_content(cfg.read_text(), ContentPolicy(), check="haproxy")


MARIADB_FILE = (
    "[mysqld]\n"
    "# tuned \\\n"
    "plugin_load_add=x.so\n"
    'key1 = "va#l" # c\n'
    "  key-3\t=\tv3\n"
    "k7 =\n"
    "skip-name-resolve\n"
)


@pytest.mark.skipif(shutil.which("my_print_defaults") is None, reason="no my_print_defaults")
def test_mariadb_reader_sees_the_options_mariadb_sees(tmp_path: Path) -> None:
    """Every option my_print_defaults prints for [mysqld] is an option our reader sees, with
    the same value; the comment ending in a backslash hides nothing from either."""
    cnf = tmp_path / "m.cnf"
    cnf.write_text(MARIADB_FILE)
    res = subprocess.run(
        ["my_print_defaults", f"--defaults-file={cnf}", "mysqld"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    theirs = [line.removeprefix("--") for line in res.stdout.splitlines()]
    ours = []
    for no, line in enumerate(MARIADB_FILE.splitlines(), 1):
        text = line.strip()
        if not text or text[0] in "#;[":
            continue
        parsed = _option(no, text)
        assert parsed is not None, text
        raw_key, _, value = parsed
        ours.append(f"{raw_key}={value}" if "=" in text else raw_key)
    assert ours == theirs
    with pytest.raises(PolicyViolation, match="plugin_load"):  # any file: the denylist
        check_content(MARIADB_FILE, ContentPolicy(), path="/srv/notes.txt")
    with pytest.raises(PolicyViolation, match="backslash"):  # mariadbd's file: stricter still
        check_content(MARIADB_FILE, ContentPolicy(), path="/etc/mysql/conf.d/x.cnf")
