"""``keystone.fernet_keys`` and ``keystone.db`` (state resources): Keystone's HA chores.

**The fernet key repository** must be identical on every controller: a token one node issues
is validated by whichever node the VIP sends the next request to. The site keeps the
repository as one pillar secret (``INDEX KEY`` per line, Keystone's own file names and
contents; docs/keystone.md); this resource makes the node's folder exactly that:

- every key checked first (44 characters of URL-safe base64 that decode to 32 bytes; index 0,
  the *staged* key, and at least one other), so a bad secret changes nothing;
- written **new indexes first, then changed ones, then the removals**, each file atomically
  (a temporary file renamed over it), so a Keystone reading the folder at any instant holds
  every key it held before plus the new ones until the stale ones go. With the rotation of
  ``hactl keystone rotate`` (the staged key every node already holds becomes the primary)
  no node ever lacks the key another one signs with.

**The database schema and the bootstrap** (``keystone.db``): ``keystone-manage db_sync`` when
``db_sync --check`` says the schema is behind, then ``keystone-manage bootstrap`` (idempotent:
the admin user, project, roles, region and the identity endpoints), the admin password in the
environment (``OS_BOOTSTRAP_PASSWORD``), never on a command line.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import tempfile
from pathlib import Path
from typing import Any

from hactl.minion.executors.base import CommandRefused, ExecContext
from hactl.minion.executors.files import allowed_path
from hactl.minion.executors.proc import run_argv
from hactl.wire import fernet

Result = dict[str, Any]
#: what keystone-manage bootstrap logs when it made something (it logs skips too)
_MADE = re.compile(r"\b(Created|Reset password)\b[^\n]*")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_keys(text: str) -> dict[int, str]:
    """The repository of ``text`` (hactl/wire/fernet.py), or CommandRefused naming the line."""
    try:
        return fernet.parse(text)
    except ValueError as exc:
        raise CommandRefused("keystone.fernet_keys", str(exc)) from None


fernet_key = fernet.fernet_key


def _ids(owner: str | None, group: str | None) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(owner).pw_uid if owner else -1
        gid = grp.getgrnam(group).gr_gid if group else -1
    except KeyError as exc:
        raise CommandRefused("keystone.fernet_keys", f"no such user or group: {exc}") from None
    return uid, gid


def _write(folder: Path, name: str, data: str, uid: int, gid: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        if uid != -1 or gid != -1:
            os.chown(tmp, uid, gid)
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def present(folder: Path) -> dict[int, str]:
    """The key files of ``folder`` (names that are indexes), {index: key}."""
    out: dict[int, str] = {}
    if not folder.is_dir():
        return out
    for f in folder.iterdir():
        if fernet.INDEX.match(f.name) and f.is_file():
            out[int(f.name)] = f.read_text(encoding="ascii", errors="replace").strip()
    return out


async def fernet_keys(ctx: ExecContext, args: dict[str, Any], test: bool) -> Result:
    """Make ``args['dir']`` hold exactly the keys of ``args['keys']`` (module docstring)."""
    want = parse_keys(str(args["keys"]))
    folder = allowed_path(ctx, str(args["dir"]))
    uid, gid = _ids(args.get("owner"), args.get("group"))
    have = present(folder)
    added = sorted((i for i in want if i not in have), reverse=True)
    replaced = sorted((i for i in want if i in have and have[i] != want[i]), reverse=True)
    replaced.sort(key=lambda i: i == 0)  # the staged key last: a primary exists first
    removed = sorted(i for i in have if i not in want)
    changes: dict[str, Any] = {}
    if added:
        changes["added"] = added
    if replaced:
        changes["replaced"] = replaced
    if removed:
        changes["removed"] = removed
    if not changes:
        return {"result": True, "changes": {}, "comment": f"{len(want)} keys in place"}
    if test:
        return {"result": None, "changes": changes, "comment": "would change the key files"}
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    if uid != -1 or gid != -1:
        os.chown(folder, uid, gid)
    for index in (*added, *replaced):
        _write(folder, str(index), want[index], uid, gid)
    for index in removed:
        (folder / str(index)).unlink(missing_ok=True)
    primary = max(want)
    return {"result": True, "changes": changes, "comment": f"primary key {primary}, staged 0"}


async def keystone_db(ctx: ExecContext, args: dict[str, Any], test: bool) -> Result:
    """``db_sync`` when the schema is behind, then ``bootstrap`` (module docstring)."""
    k = ctx.keystone
    if k is None:
        raise CommandRefused("keystone.db", "no keystone section in this minion's minion.yaml")
    base = [*k.manage, "--config-file", k.config]
    check = await run_argv([*base, "db_sync", "--check"], ctx.command_timeout, k.env)
    if check.code not in (0, 2, 3, 4):  # 0 current, 2-4: expand / migrate / contract due
        if test:  # a first apply's test: keystone.conf and the database are not there yet
            why = "would sync the schema and bootstrap once this apply wrote keystone.conf"
            why += f" and the database (the check now: {_tail(check.output, check.code)[-200:]})"
            return {"result": None, "changes": {"db_sync": True, "bootstrap": True}, "comment": why}
        return {"result": False, "changes": {}, "comment": _tail(check.output, check.code)}
    changes: dict[str, Any] = {}
    if check.code != 0:
        if test:
            return {"result": None, "changes": {"db_sync": True}, "comment": "schema behind"}
        sync = await run_argv([*base, "db_sync"], ctx.command_timeout, k.env)
        if sync.code != 0:
            return {"result": False, "changes": {}, "comment": _tail(sync.output, sync.code)}
        changes["db_sync"] = True
    if test:
        return {"result": True, "changes": {}, "comment": "schema current"}
    argv = [*base, "bootstrap", "--bootstrap-region-id", str(args["region"])]
    for kind in ("public", "internal", "admin"):
        if url := args.get(f"{kind}_url"):
            argv += [f"--bootstrap-{kind}-url", str(url)]
    env = {**k.env, "OS_BOOTSTRAP_PASSWORD": str(args["admin_password"])}
    boot = await run_argv(argv, ctx.command_timeout, env)
    if boot.code != 0:
        return {"result": False, "changes": changes, "comment": _tail(boot.output, boot.code)}
    plain = _ANSI.sub("", boot.output)
    made = [m.group(0).rstrip(". ") for m in _MADE.finditer(plain)]
    if made:
        changes["bootstrap"] = made[:20]
    return {"result": True, "changes": changes, "comment": "schema current, bootstrapped"}


def _tail(output: str, code: int) -> str:
    """The last lines of keystone-manage's output that are not eventlet's exit-time noise."""
    lines = [
        ln
        for ln in output.splitlines()
        if ln.strip() and "eventlet" not in ln and "getcurrent" not in ln
    ]
    return ("\n".join(lines[-8:]) or "no output")[-1000:] + f" (exit {code})"


__all__ = ["fernet_key", "fernet_keys", "keystone_db", "parse_keys", "present"]
