"""``file.apply``: make a file hold exactly the given content, safely.

The new content is staged in a temporary file beside the target, given its mode and owner and
validated there with the check command (``{path}`` is the staged file), so a rejected config
never replaces the old one, which stays byte-identical. On success the old file is kept as
``<path>.hactl-bak`` and the staged file is renamed over the target (atomic on one filesystem).
The reply carries a unified diff. With ``test: true`` nothing is written.
"""

from __future__ import annotations

import contextlib
import difflib
import grp
import os
import pwd
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hactl.minion.executors.base import Arg, CommandRefused, ExecContext, Executor
from hactl.minion.executors.policy import PolicyViolation, check_content
from hactl.minion.executors.proc import run_argv
from hactl.minion.executors.sandbox import readable_copy, sandbox_for

NAME = "file.apply"
BACKUP_SUFFIX = ".hactl-bak"
_MODE = re.compile(r"^0?[0-7]{3,4}\Z")
MAX_DIFF_LINES = 2000


def allowed_path(ctx: ExecContext, path: str) -> Path:
    """The real path of ``path`` if it lies under an allowed root; else refused."""
    if not path.startswith("/") or "\x00" in path:
        raise CommandRefused(NAME, f"path must be absolute: {path!r}")
    real = Path(os.path.realpath(path))
    for root in ctx.allowed_roots:
        root_real = Path(os.path.realpath(root))
        if real == root_real or root_real in real.parents:
            return real
    roots = ", ".join(str(r) for r in ctx.allowed_roots) or "(none configured)"
    raise CommandRefused(NAME, f"{real} is outside the allowed roots {roots}")


def unified_diff(old: bytes | None, new: bytes, path: str) -> str:
    """A unified diff (text files), or a one-line note for binary content."""
    try:
        old_text = "" if old is None else old.decode("utf-8")
        new_text = new.decode("utf-8")
    except UnicodeDecodeError:
        return f"binary content differs ({0 if old is None else len(old)} -> {len(new)} bytes)"
    lines = list(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"{path} (current)" if old is not None else "/dev/null",
            tofile=f"{path} (new)",
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... {len(lines) - MAX_DIFF_LINES} more lines\n"]
    return "".join(lines)


def _ids(owner: str | None, group: str | None) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(owner).pw_uid if owner else -1
        gid = grp.getgrnam(group).gr_gid if group else -1
    except KeyError as exc:
        raise CommandRefused(NAME, f"unknown user or group {exc.args[0]}") from None
    return uid, gid


@dataclass(frozen=True, slots=True)
class Checked:
    """A ``file.apply`` whose arguments passed :func:`preflight`."""

    target: Path
    content: bytes
    mode: int
    ids: tuple[int, int]
    check: list[str] | None
    check_name: str | None = None


def preflight(ctx: ExecContext, args: dict[str, Any]) -> Checked:
    """Everything about a file checked before anything is written: the path under an allowed
    root, the mode (no setuid, setgid or sticky bit), the owner and group, the check name, and
    the content policy. ``state.apply`` runs it on every file of a plan before the first one
    is written, so a refused resource refuses the whole plan."""
    target = allowed_path(ctx, args["path"])
    mode_text = args["mode"]
    if not _MODE.match(mode_text):
        raise CommandRefused(NAME, f"mode must be octal like 0644, got {mode_text!r}")
    mode = int(mode_text, 8)
    if mode & 0o7000:
        raise CommandRefused(NAME, f"mode {mode_text}: setuid, setgid and sticky bits are refused")
    ids = _ids(args["owner"], args["group"])
    check = None
    if args["check"] is not None:  # a name from this minion's own list, never an argv
        template = ctx.check_commands.get(args["check"])
        if template is None:
            raise CommandRefused(
                NAME,
                f"check {args['check']!r} is not one of this minion's check commands "
                f"({', '.join(sorted(ctx.check_commands)) or 'none'})",
            )
        check = list(template)
    content = args["content"]
    new = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    try:  # before anything is staged: a daemon running as root would execute it
        check_content(new, ctx.content_policy, path=str(target), check=args["check"])
    except PolicyViolation as exc:
        raise CommandRefused(NAME, f"{target}: {exc} (content policy)") from None
    return Checked(target, new, mode, ids, check, args["check"])


async def apply(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """The body of ``file.apply``."""
    checked = preflight(ctx, args)
    target, new, mode, check = checked.target, checked.content, checked.mode, checked.check
    as_root = checked.check_name in ctx.checks_as_root
    uid, gid = checked.ids
    mode_text = args["mode"]
    if target.exists() and not target.is_file():
        raise CommandRefused(NAME, f"{target} exists and is not a regular file")
    old = target.read_bytes() if target.exists() else None
    st = target.stat() if old is not None else None
    changes: dict[str, Any] = {}
    if old != new:
        changes["diff"] = unified_diff(old, new, str(target))
    if st is None or (st.st_mode & 0o7777) != mode:
        changes["mode"] = mode_text
    if st is not None and ((uid not in (-1, st.st_uid)) or (gid not in (-1, st.st_gid))):
        changes["owner"] = f"{args['owner'] or ''}:{args['group'] or ''}"
    if not changes:
        return {"result": True, "changes": {}, "comment": f"{target} is already as wanted"}
    if args["test"]:
        return {"result": None, "changes": changes, "comment": f"{target} would be changed"}
    if not target.parent.is_dir():
        if not args["makedirs"]:
            return {
                "result": False,
                "changes": {},
                "comment": f"directory {target.parent} does not exist",
            }
        target.parent.mkdir(parents=True, exist_ok=True)
    failure, backup = await _commit(
        ctx,
        target,
        new,
        old,
        st,
        mode,
        (uid, gid),
        check,
        keep_backup=args["backup"],
        as_root=as_root,
    )
    if failure is not None:
        return failure
    return {
        "result": True,
        "changes": changes,
        "backup": backup,
        "comment": f"{target} updated" if old is not None else f"{target} created",
    }


async def _commit(
    ctx: ExecContext,
    target: Path,
    new: bytes,
    old: bytes | None,
    st: os.stat_result | None,
    mode: int,
    ids: tuple[int, int],
    check: list[str] | None,
    *,
    keep_backup: bool,
    as_root: bool = False,
) -> tuple[dict[str, Any] | None, str]:
    """Stage, check, back up and rename. Returns (failure reply or None, backup path)."""
    staged = _stage(target, new, mode)
    try:
        if ids != (-1, -1):
            os.chown(staged, *ids)
        if check is not None:
            code, output = await _run_check(ctx, check, staged, new, target, as_root)
            if code != 0:
                return {
                    "result": False,
                    "changes": {},
                    "comment": f"check {' '.join(check)} failed (exit {code}); "
                    f"{target} left unchanged",
                    "check_output": output[-4000:],
                }, ""
        backup = ""
        if old is not None and keep_backup:
            backup = str(target) + BACKUP_SUFFIX
            _write_atomic(Path(backup), old, st.st_mode & 0o7777 if st else 0o600)
        os.replace(staged, target)
        staged = ""
        _fsync_dir(target.parent)
    finally:
        if staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
    return None, backup


async def _run_check(
    ctx: ExecContext, check: list[str], staged: str, new: bytes, target: Path, as_root: bool
) -> tuple[int, str]:
    """Run the check on the staged content, as ``ctx.check_user`` when the minion is root
    and the check is not one of ``ctx.checks_as_root`` (sandbox.py); the output names the
    target, not the copy."""
    sandbox = None if as_root else sandbox_for(ctx.check_user, check[0])
    if sandbox is None:
        res = await run_argv([staged if a == "{path}" else a for a in check], ctx.command_timeout)
        return res.code, res.output.replace(staged, str(target))
    with readable_copy(sandbox, new, target.name) as copy:
        argv = sandbox.wrap([copy if a == "{path}" else a for a in check])
        res = await run_argv(argv, ctx.command_timeout)
        return res.code, res.output.replace(copy, str(target))


def _stage(target: Path, data: bytes, mode: int) -> str:
    """Write ``data`` (fsynced, with ``mode``) to a hidden temp file beside ``target``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".hactl", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = _stage(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


FILE_APPLY = Executor(
    name=NAME,
    args=(
        Arg("path", (str,)),
        Arg("content", (str, bytes)),
        Arg("mode", (str,), required=False, default="0644"),
        Arg("owner", (str,), required=False),
        Arg("group", (str,), required=False),
        Arg("check", (str,), required=False),
        Arg("backup", (bool,), required=False, default=True),
        Arg("makedirs", (bool,), required=False, default=False),
        Arg("test", (bool,), required=False, default=False),
    ),
    body=apply,
    doc=__doc__ or "",
)
