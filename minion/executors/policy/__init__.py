"""The config-content policy: what a file written by hactl may make a root daemon run or read.

The master renders configs that keepalived, HAProxy and MariaDB (started as root) read. Those
formats can run programs, load code or hand a file to clients; a master or admin key in the
wrong hands would then be root on every node. Before ``file.apply`` writes anything, the
minion reads the new content **the way each daemon lexes it** (HAProxy's escapes and quotes,
keepalived's whitespace and blocks, MariaDB's groups and prefixes: one module each) and
refuses it:

- **every file**, whatever its name, against every daemon's list of directives that run or
  load code (a daemon may be made to read any file: an included directory, a second ``-f``);
- **a key or certificate file** (``*.pem``): PEM blocks only;
- **an oslo.config file** (keystone.conf): no option that loads code or more files, path
  options confined, the database a MySQL URL (``oslo.py``);
- **a file a daemon reads** -- decided by the minion, never by the request: the ``check``
  name (``haproxy``, ``keepalived``) or the path (``content_policy.formats``) -- against that
  daemon's keyword **allowlist**, with every path argument confined to this minion's folders
  and every value in a plain character set where a shell could see it.

Anything a daemon would read differently from us (a control character, a line continuation,
an environment variable) is refused rather than guessed. Each rule has a test in
``tests/unit/test_content_policy.py``; the lexers are checked against the daemons' own
parsers (``haproxy -c``, ``my_print_defaults``) in ``tests/integration/test_policy_daemons.py``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from hactl.minion.executors.policy import haproxy, keepalived, mariadb, oslo, pem
from hactl.minion.executors.policy.common import (
    DEFAULT_FORMATS,
    SHIPPED_CHECK,
    SHIPPED_TRACK_DIR,
    ContentPolicy,
    PolicyViolation,
)

__all__ = [
    "DEFAULT_FORMATS",
    "FORMATS",
    "SHIPPED_CHECK",
    "SHIPPED_TRACK_DIR",
    "ContentPolicy",
    "PolicyViolation",
    "check_content",
    "format_of",
]

#: the readers a path or check name can select; a path matching several globs gets the first
#: (``/etc/haproxy/certs/x.pem`` is a key file, not HAProxy's config)
FORMATS = ("pem", "haproxy", "keepalived", "mariadb", "oslo")


def format_of(policy: ContentPolicy, path: str, check: str | None) -> str | None:
    """The daemon whose allowlist ``path`` gets: the check's, else the first matching
    ``formats`` glob (in the order of FORMATS); None for any other file."""
    if check in FORMATS and check != "pem":  # a check is a daemon's command, never "pem"
        return check
    pairs = (f.rpartition("=") for f in policy.formats)
    found = {fmt for glob, _, fmt in pairs if fnmatchcase(path, glob)}
    return next((fmt for fmt in FORMATS if fmt in found), None)


def check_content(
    content: str | bytes, policy: ContentPolicy, *, path: str = "", check: str | None = None
) -> None:
    """Raise :class:`PolicyViolation` for the first directive the policy refuses."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    fmt = format_of(policy, path, check)
    if fmt == "pem":
        pem.check(text)
    if fmt == "oslo":
        oslo.check(text, policy)
    if fmt == "haproxy":
        haproxy.check_strict(text, policy)
    else:
        haproxy.check_any(text)
    keepalived.check(text, policy, strict=fmt == "keepalived")
    mariadb.check(text, policy, strict=fmt == "mariadb")
