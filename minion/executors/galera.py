"""``galera.position``, ``galera.bootstrap`` and ``galera.start``: the minion's Galera hands.

All three need the ``galera`` section of minion.yaml (defaults_file, datadir, socket). The
master's planner decides; these only act on the local node and refuse anything unsafe here:

- ``galera.position`` never runs ``--wsrep-recover`` while the server answers or its pid is
  alive (InnoDB would be opened twice); a clean grastate.dat (seqno >= 0) is used as is.
- ``galera.bootstrap`` refuses while the server runs, and refuses when the position it finds
  is not the one the planner chose (``uuid``/``seqno`` arguments): a stale decision must not
  bootstrap an older node. It then sets ``safe_to_bootstrap: 1`` and starts
  ``mariadbd --wsrep-new-cluster --wsrep-start-position=uuid:seqno``.
- ``galera.start`` starts a joiner with ``--wsrep-start-position`` (IST rather than a full SST).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from hactl.errors import DecodeError, HactlError
from hactl.minion.beacons.galera import parse_recovered, read_grastate, sql_client
from hactl.minion.executors.base import (
    Arg,
    Body,
    CommandRefused,
    ExecContext,
    Executor,
    GaleraSettings,
)
from hactl.minion.executors.proc import run_argv
from hactl.wire.leases import bootstrap_key, decode_bootstrap

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def galera_settings(ctx: ExecContext, cmd: str) -> GaleraSettings:
    if ctx.galera is None:
        raise CommandRefused(cmd, "no galera section in this minion's configuration")
    return ctx.galera


def pid_alive(g: GaleraSettings) -> int | None:
    """The server's pid if that process runs (a zombie, killed but not reaped, does not)."""
    try:
        pid = int(Path(g.pid_file).read_text().strip())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return None if state == "Z" else pid


def local_query(g: GaleraSettings, sql: str, timeout: float = 1.0) -> list[tuple[Any, ...]] | None:
    """The rows of ``sql`` on the local server (root, its socket), or None when it does not
    answer."""
    pymysql = sql_client()
    try:
        conn = pymysql.connect(
            unix_socket=g.socket,
            user="root",
            connect_timeout=timeout,
            read_timeout=timeout,
            ssl_disabled=True,
        )
    except (pymysql.Error, OSError):
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    except (pymysql.Error, OSError):
        return None
    finally:
        conn.close()


def wsrep_status(g: GaleraSettings, timeout: float = 1.0) -> dict[str, str] | None:
    """The wsrep status of the local server, or None when it does not answer."""
    rows = local_query(g, "SHOW GLOBAL STATUS LIKE 'wsrep\\_%'", timeout)
    return None if rows is None else {str(k): str(v) for k, v in rows}


async def _running(g: GaleraSettings) -> str | None:
    """Why the server counts as running (answers, or its pid lives), or None."""
    if await asyncio.to_thread(wsrep_status, g) is not None:
        return f"mariadbd answers on {g.socket}"
    pid = pid_alive(g)
    return f"mariadbd pid {pid} is alive" if pid else None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


async def _recover(ctx: ExecContext, g: GaleraSettings) -> tuple[str, int] | str:
    """Run ``--wsrep-recover``: the position, or what went wrong."""
    # mariadbd drops to the datadir's owner (user=mysql): give it a private folder of its own.
    tmp = tempfile.mkdtemp(prefix="hactl-recover-")
    st = os.stat(g.datadir)
    os.chown(tmp, st.st_uid, st.st_gid)
    log_path = os.path.join(tmp, "recover.log")
    try:
        res = await run_argv(
            [
                g.mariadbd,
                f"--defaults-file={g.defaults_file}",
                "--wsrep-recover",
                f"--log-error={log_path}",
            ],
            ctx.command_timeout,
        )
        text = await asyncio.to_thread(_read, log_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    found = parse_recovered(text)
    if found is None:
        return f"--wsrep-recover exit {res.code}: " + (text.strip()[-500:] or res.output[-500:])
    return found


async def position(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """This node's last committed position and where it came from."""
    g = galera_settings(ctx, "galera.position")
    status = await asyncio.to_thread(wsrep_status, g)
    if status is not None:
        return {
            "result": True,
            "running": True,
            "source": "live",
            "uuid": status.get("wsrep_cluster_state_uuid"),
            "seqno": int(status.get("wsrep_last_committed", "-1")),
            "cluster_status": status.get("wsrep_cluster_status"),
            "safe_to_bootstrap": False,
        }
    if pid := pid_alive(g):
        raise CommandRefused("galera.position", f"mariadbd pid {pid} is alive but not answering")
    grastate = read_grastate(g.datadir) or {}
    stb = bool(grastate.get("safe_to_bootstrap"))
    seqno = grastate.get("seqno")
    if grastate.get("uuid") and isinstance(seqno, int) and seqno >= 0 and not args["recover"]:
        return {
            "result": True,
            "running": False,
            "source": "grastate",
            "uuid": grastate["uuid"],
            "seqno": seqno,
            "safe_to_bootstrap": stb,
        }
    found = await _recover(ctx, g)
    if isinstance(found, str):
        return {"result": False, "running": False, "source": "recover", "comment": found}
    return {
        "result": True,
        "running": False,
        "source": "recover",
        "uuid": found[0],
        "seqno": found[1],
        "safe_to_bootstrap": stb,
    }


def _set_safe_to_bootstrap(datadir: str) -> None:
    """Rewrite grastate.dat with ``safe_to_bootstrap: 1``, following no symlink anywhere.

    The datadir belongs to mysql: a grastate.dat (or a datadir) that is a symlink would make
    this root process rewrite and chown a file of the attacker's choosing. Every component of
    the datadir is a real directory, the file is opened O_NOFOLLOW relative to the directory's
    descriptor, and ownership is copied with fchown on the descriptor itself."""
    where = os.path.abspath(datadir)
    if os.path.realpath(where) != where:
        raise CommandRefused("galera.bootstrap", f"{datadir} goes through a symlink: refused")
    dfd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        try:
            fd = os.open("grastate.dat", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
        except OSError as exc:
            raise CommandRefused(
                "galera.bootstrap", f"grastate.dat: {exc.strerror} (a symlink is refused)"
            ) from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise CommandRefused("galera.bootstrap", "grastate.dat is not a regular file")
            text = fh.read(1 << 16).decode("utf-8", "replace")
        new = re.sub(r"(?m)^safe_to_bootstrap:\s*\d+", "safe_to_bootstrap: 1", text)
        tmp = ".grastate.dat.hactl"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dfd)
        out = os.open(
            tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
            st.st_mode & 0o777,
            dir_fd=dfd,
        )
        try:
            os.write(out, new.encode("utf-8"))
            os.fchown(out, st.st_uid, st.st_gid)
            os.fchmod(out, st.st_mode & 0o777)
            os.fsync(out)
        finally:
            os.close(out)
        os.replace(tmp, "grastate.dat", src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        os.close(dfd)


async def spawn_mariadbd(g: GaleraSettings, extra: list[str]) -> int:
    """Start mariadbd detached (its own session); the minion reaps it if it exits."""
    proc = await asyncio.create_subprocess_exec(
        g.mariadbd,
        f"--defaults-file={g.defaults_file}",
        *extra,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    _REAPERS.add(asyncio.ensure_future(proc.wait()))
    return proc.pid


_REAPERS: set[asyncio.Future[int]] = set()


async def wait_state(g: GaleraSettings, want: str, timeout: float) -> dict[str, str] | None:
    """Poll until the node reports ``want`` (Synced) or the timeout passes."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = await asyncio.to_thread(wsrep_status, g)
        if status and status.get("wsrep_local_state_comment") == want:
            return status
        await asyncio.sleep(0.1)
    return status


def _check_position(cmd: str, uuid: str, seqno: int) -> str:
    if not _UUID.match(uuid) or seqno < -1:
        raise CommandRefused(cmd, f"bad position {uuid}:{seqno}")
    return f"{uuid}:{seqno}"


LEASE_READS = 8  # tries over ~2 s before "no lease"


async def _check_lease(ctx: ExecContext, uuid: str, seqno: int) -> None:
    """Refuse unless the master's planner took this epoch's bootstrap lease for this node: a
    bootstrap sent by anything else (an admin key, a stale master) could split the cluster or
    lose transactions. Read-only; the minion never writes a lease."""
    cmd, key = "galera.bootstrap", bootstrap_key(uuid, seqno)
    if ctx.leases is None:
        raise CommandRefused(cmd, "not connected to the bus: cannot check the bootstrap lease")
    data = None
    for attempt in range(LEASE_READS):
        # direct gets may be answered by a replica a moment behind the master's write
        try:
            data = await ctx.leases(key)
        except HactlError as exc:
            raise CommandRefused(cmd, f"cannot read the bootstrap lease {key}: {exc}") from None
        if data is not None or attempt == LEASE_READS - 1:
            break
        await asyncio.sleep(0.25)
    if data is None:
        raise CommandRefused(
            cmd,
            f"no bootstrap lease {key}: only the master's recovery plan "
            "bootstraps (hactl galera recover)",
        )
    try:
        lease = decode_bootstrap(data)
    except DecodeError as exc:
        raise CommandRefused(cmd, f"bootstrap lease {key} is not valid: {exc.detail}") from None
    if (lease.node, lease.uuid, lease.seqno) != (ctx.minion_id, uuid, seqno):
        raise CommandRefused(
            cmd,
            f"bootstrap lease {key} names {lease.node} at "
            f"{lease.uuid}:{lease.seqno}, not this node",
        )


async def bootstrap(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """Start a new Primary component from this node, at the position the planner chose."""
    g = galera_settings(ctx, "galera.bootstrap")
    pos = _check_position("galera.bootstrap", args["uuid"], args["seqno"])
    await _check_lease(ctx, args["uuid"], args["seqno"])
    if why := await _running(g):
        raise CommandRefused("galera.bootstrap", f"{why}; stop it before bootstrapping")
    here = await position(ctx, {"recover": False})
    if not here.get("result") or (here.get("uuid"), here.get("seqno")) != (
        args["uuid"],
        args["seqno"],
    ):
        raise CommandRefused(
            "galera.bootstrap",
            f"this node is at {here.get('uuid')}:{here.get('seqno')}, not {pos}: stale plan",
        )
    if ctx.use_systemd:
        _set_safe_to_bootstrap(g.datadir)
        res = await run_argv(["galera_new_cluster"], ctx.command_timeout)
        return {"result": res.code == 0, "changes": {"bootstrapped": pos}, "comment": res.output}
    _set_safe_to_bootstrap(g.datadir)
    pid = await spawn_mariadbd(g, ["--wsrep-new-cluster", f"--wsrep-start-position={pos}"])
    status = await wait_state(g, "Synced", args["timeout"])
    ok = bool(status and status.get("wsrep_cluster_status") == "Primary")
    return {
        "result": ok,
        "changes": {"bootstrapped": pos, "pid": pid},
        "comment": "Primary, Synced" if ok else f"not Synced after {args['timeout']}s",
    }


async def start(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
    """Start this node as a joiner (IST from ``position`` when given); wait until Synced."""
    g = galera_settings(ctx, "galera.start")
    if why := await _running(g):
        return {"result": True, "changes": {}, "comment": f"already running: {why}"}
    extra: list[str] = []
    if args["uuid"]:
        extra.append(
            f"--wsrep-start-position={_check_position('galera.start', args['uuid'], args['seqno'])}"
        )
    if ctx.use_systemd:
        res = await run_argv(["systemctl", "start", "mariadb"], ctx.command_timeout)
        return {"result": res.code == 0, "changes": {"started": True}, "comment": res.output}
    pid = await spawn_mariadbd(g, extra)
    status = await wait_state(g, "Synced", args["timeout"])
    ok = status is not None and status.get("wsrep_local_state_comment") == "Synced"
    return {
        "result": ok,
        "changes": {"started": True, "pid": pid},
        "comment": "Synced" if ok else f"not Synced after {args['timeout']}s",
    }


MAX_WAIT = (1.0, 600.0)  # seconds a bootstrap or join may wait to be Synced

DATADIR_LOCKS: dict[str, asyncio.Lock] = {}


def _one_at_a_time(body: Body) -> Body:
    """Position, bootstrap and start of one datadir run one at a time: two concurrent starts
    would otherwise both see mariadbd stopped and start two on the same datadir."""

    async def serialized(ctx: ExecContext, args: dict[str, Any]) -> dict[str, Any]:
        key = ctx.galera.datadir if ctx.galera is not None else ""
        async with DATADIR_LOCKS.setdefault(key, asyncio.Lock()):
            return await body(ctx, args)

    return serialized


GALERA_POSITION = Executor(
    name="galera.position",
    args=(Arg("recover", (bool,), required=False, default=False),),
    body=_one_at_a_time(position),
)
GALERA_BOOTSTRAP = Executor(
    name="galera.bootstrap",
    args=(
        Arg("uuid", (str,)),
        Arg("seqno", (int,)),
        Arg("timeout", (int, float), required=False, default=30, between=MAX_WAIT),
    ),
    body=_one_at_a_time(bootstrap),
)
GALERA_START = Executor(
    name="galera.start",
    args=(
        Arg("uuid", (str,), required=False, default=""),
        Arg("seqno", (int,), required=False, default=-1),
        Arg("timeout", (int, float), required=False, default=60, between=MAX_WAIT),
    ),
    body=_one_at_a_time(start),
)
