"""``galera.member`` (a state resource): this node is a member of the site's Galera cluster.

What a real controller needs by hand after ``apt install mariadb-server galera-4``, and what
the seeds' guides do with ``galera_new_cluster`` on one node and a restart on the others:

- a Synced member of a Primary component: nothing to do;
- a server the package started **standalone** (``wsrep_on`` OFF, the config just written was
  not read yet): stopped, then handled as not running;
- not running, with a **blank** datadir (no cluster history: no grastate.dat, or a zero
  uuid): the node the pillar names (``bootstrap: true``, the Galera writer) starts a new
  cluster -- only when no other member answers on its group port, else it joins that one;
  every other node waits (up to ``timeout``) for a member to answer there, then starts as a
  joiner and receives a full state transfer;
- not running **with** a history: left alone. Restarting a crashed member or a whole cluster
  is the reactor's (``galera-node-rejoin``, ``galera-cluster-down``: from a known position,
  under the master's bootstrap lease); a state that started it too would fight them.

The resource waits until the node is Synced. It holds the datadir's lock of the Galera
commands (``minion/executors/galera.py``) throughout, so a reactor command on the same node
waits and then finds it running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from hactl.minion.beacons.galera import read_grastate
from hactl.minion.executors.base import ExecContext, GaleraSettings
from hactl.minion.executors.galera import (
    DATADIR_LOCKS,
    galera_settings,
    local_query,
    pid_alive,
    spawn_mariadbd,
    wsrep_status,
)
from hactl.minion.executors.proc import run_argv

Result = dict[str, Any]
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
PEER_TIMEOUT = 0.5  # s per connect to a peer's group port
STOP_WAIT = 60.0  # s for a standalone server to exit after SIGTERM


def _wsrep_on(g: GaleraSettings) -> bool | None:
    """``@@wsrep_on`` of the local server (False: standalone), None when it does not answer."""
    rows = local_query(g, "SELECT @@wsrep_on")
    return bool(int(rows[0][0])) if rows else None


async def _peer_answers(peers: list[str]) -> str | None:
    """The first peer (``host:port``) that accepts a connection on its group port."""

    async def probe(peer: str) -> str | None:
        host, _, port = peer.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), PEER_TIMEOUT
            )
        except (OSError, TimeoutError, ValueError):
            return None
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return peer

    found = await asyncio.gather(*(probe(p) for p in peers))
    return next((p for p in found if p), None)


async def _stop_standalone(ctx: ExecContext, g: GaleraSettings) -> str | None:
    """Stop the server the package started without wsrep; why not, or None when it stopped."""
    if ctx.use_systemd:
        res = await run_argv(["systemctl", "stop", "mariadb"], ctx.command_timeout)
        return None if res.code == 0 else f"systemctl stop mariadb: {res.output[-300:]}"
    pid = pid_alive(g)
    if pid is None:
        return f"a standalone mariadbd answers on {g.socket} but {g.pid_file} names no process"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    while pid_alive(g) == pid:
        if time.monotonic() > deadline:
            return f"the standalone mariadbd (pid {pid}) did not stop in {STOP_WAIT:g} s"
        await asyncio.sleep(0.1)
    return None


def _blank(g: GaleraSettings) -> bool:
    """No cluster history in the datadir (never started with wsrep, or a zero uuid)."""
    grastate = read_grastate(g.datadir)
    return grastate is None or grastate.get("uuid") in (None, "", ZERO_UUID)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not reaped yet, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def _synced(g: GaleraSettings, timeout: float, what: str, pid: int | None = None) -> Result:
    """Wait until Synced in a Primary component; a server we started that exits meanwhile (a
    failed state transfer aborts it) ends the wait at once."""
    deadline = time.monotonic() + timeout
    status: dict[str, str] | None = None
    while time.monotonic() < deadline:
        status = await asyncio.to_thread(wsrep_status, g)
        synced = status and status.get("wsrep_local_state_comment") == "Synced"
        if synced and status and status.get("wsrep_cluster_status") == "Primary":
            size = status.get("wsrep_cluster_size", "?")
            return {"result": True, "comment": f"{what}: Synced, cluster size {size}"}
        if pid is not None and not _alive(pid):
            why = (
                f"{what}: mariadbd (pid {pid}) exited before it was Synced (its error log says why)"
            )
            return {"result": False, "comment": why}
        await asyncio.sleep(0.2)
    return {"result": False, "comment": f"{what}: not Synced in {timeout:g} s"}


async def _start(ctx: ExecContext, g: GaleraSettings, bootstrap: bool) -> int | None:
    """Start the server (a new cluster, or a joiner); its pid when the minion spawned it."""
    if ctx.use_systemd:
        argv = ["galera_new_cluster"] if bootstrap else ["systemctl", "start", "mariadb"]
        res = await run_argv(argv, ctx.command_timeout)
        if res.code != 0:
            raise OSError(f"{' '.join(argv)}: exit {res.code}: {res.output[-300:]}")
        return None
    return await spawn_mariadbd(g, ["--wsrep-new-cluster"] if bootstrap else [])


async def member(ctx: ExecContext, args: dict[str, Any], test: bool) -> Result:
    """Make this node a Synced member (see the module's doc); ``test`` says what it would do."""
    g = galera_settings(ctx, "galera.member")
    async with DATADIR_LOCKS.setdefault(g.datadir, asyncio.Lock()):
        return await _member(ctx, g, args, test)


async def _member(ctx: ExecContext, g: GaleraSettings, args: dict[str, Any], test: bool) -> Result:
    status = await asyncio.to_thread(wsrep_status, g)
    if status and status.get("wsrep_cluster_status") == "Primary":
        if status.get("wsrep_local_state_comment") == "Synced":
            return {"result": True, "changes": {}, "comment": "a Synced member"}
        return {"changes": {}, **await _synced(g, args["timeout"], "joining")}
    changes: dict[str, Any] = {}
    if status is not None or pid_alive(g):
        if await asyncio.to_thread(_wsrep_on, g) is not False:
            why = "mariadbd runs but is in no Primary component (the reactor's to recover)"
            return {"result": False, "changes": {}, "comment": why}
        if test:
            return {"result": None, "changes": {"stop": "standalone"}, "comment": "would stop it"}
        if stopped := await _stop_standalone(ctx, g):
            return {"result": False, "changes": {}, "comment": stopped}
        changes["stop"] = "standalone"
    if not _blank(g):
        left = "down with a cluster history: recovering it is the reactor's (galera rules)"
        return {"result": True, "changes": changes, "comment": left}
    peers = [str(p) for p in args["peers"]]
    found = await _peer_answers(peers)
    bootstrap = bool(args["bootstrap"]) and found is None
    if test:
        what = "bootstrap a new cluster" if bootstrap else "join the cluster"
        return {"result": None, "changes": {"start": what}, "comment": f"would {what}"}
    if not bootstrap:
        deadline = time.monotonic() + float(args["timeout"])
        while found is None:
            if time.monotonic() > deadline:
                why = f"no member answers on {', '.join(peers)} within {args['timeout']} s"
                return {"result": False, "changes": changes, "comment": why}
            await asyncio.sleep(0.5)
            found = await _peer_answers(peers)
    pid = await _start(ctx, g, bootstrap)
    changes["start"] = "bootstrap" if bootstrap else f"join ({found})"
    what = "a new cluster" if bootstrap else f"joined through {found}"
    return {"changes": changes, **await _synced(g, args["timeout"], what, pid)}
