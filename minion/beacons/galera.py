"""The ``galera`` beacon: wsrep status over the local socket, or grastate.dat when it is down.

Options: ``socket`` (mariadbd unix socket, required), ``datadir`` (for grastate.dat, required),
``user`` (default ``root``, unix_socket auth), ``password_file`` (optional), ``interval``
(default 1 s), ``timeout`` (connect/read, default 1 s), ``min_free`` (bytes, default 64 MiB).

One item, ``local``. While mariadbd answers: ``running: true`` with ``cluster_status``
(Primary/non-Primary/Disconnected), ``local_state`` and ``local_state_comment``,
``cluster_size``, ``cluster_state_uuid``, ``last_committed``, ``ready``, ``connected``. When it
does not: ``running: false`` and the position saved in grastate.dat (``uuid``, ``seqno``,
``safe_to_bootstrap``); ``seqno: -1`` means it crashed and the position needs
``--wsrep-recover`` (the ``galera.position`` command). Either way, ``datadir_free`` (bytes an
unprivileged writer -- mariadbd runs as mysql -- may still use on the datadir's filesystem, None
when it cannot be read) and ``disk_full`` (``datadir_free`` below ``min_free``): a node is not
started again on a full disk, and is as soon as space is freed (reactors/galera.yaml).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pymysql

from hactl.minion.beacons.base import BeaconContext, Item, Snapshot

ITEM = "local"
_RECOVERED = re.compile(r"WSREP: Recovered position:?\s+([0-9a-f-]{36}):(-?\d+)")
_STATUS_SQL = "SHOW GLOBAL STATUS LIKE 'wsrep\\_%'"


def sql_client() -> Any:
    """PyMySQL, imported on first use (a minion without Galera never pays for it)."""
    import pymysql  # noqa: PLC0415 - only on nodes that run Galera

    return pymysql


def parse_grastate(text: str) -> dict[str, Any]:
    """``grastate.dat`` -> ``{uuid, seqno, safe_to_bootstrap}`` (missing keys are None)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    seqno = fields.get("seqno")
    stb = fields.get("safe_to_bootstrap")
    return {
        "uuid": fields.get("uuid"),
        "seqno": int(seqno) if seqno and re.fullmatch(r"-?\d+", seqno) else None,
        "safe_to_bootstrap": stb == "1" if stb is not None else None,
    }


def parse_recovered(text: str) -> tuple[str, int] | None:
    """The ``uuid, seqno`` that ``mariadbd --wsrep-recover`` logged, or None."""
    found = _RECOVERED.findall(text)
    if not found:
        return None
    uuid, seqno = found[-1]
    return uuid, int(seqno)


def parse_status_tsv(text: str) -> dict[str, str]:
    """``mariadb -B -e "SHOW STATUS LIKE 'wsrep%'"`` output -> name -> value."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition("\t")
        if name and name != "Variable_name":
            out[name] = value
    return out


def _on(value: str | None) -> bool:
    return (value or "").upper() in ("ON", "1", "TRUE")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def status_item(status: dict[str, str]) -> Item:
    """The beacon item for a running node from its wsrep status variables."""
    return {
        "running": True,
        "cluster_status": status.get("wsrep_cluster_status", ""),
        "local_state": _int(status.get("wsrep_local_state")),
        "local_state_comment": status.get("wsrep_local_state_comment", ""),
        "cluster_size": _int(status.get("wsrep_cluster_size")) or 0,
        "cluster_state_uuid": status.get("wsrep_cluster_state_uuid", ""),
        "last_committed": _int(status.get("wsrep_last_committed")),
        "ready": _on(status.get("wsrep_ready")),
        "connected": _on(status.get("wsrep_connected")),
        "synced": status.get("wsrep_local_state_comment") == "Synced"
        and status.get("wsrep_cluster_status") == "Primary",
    }


def down_item(grastate: dict[str, Any] | None, detail: str) -> Item:
    """The beacon item for a node whose server does not answer."""
    g = grastate or {}
    return {
        "running": False,
        "synced": False,
        "detail": detail,
        "uuid": g.get("uuid"),
        "seqno": g.get("seqno"),
        "safe_to_bootstrap": g.get("safe_to_bootstrap"),
        "grastate": grastate is not None,
    }


def datadir_space(datadir: str, min_free: int) -> Item:
    """``datadir_free`` and ``disk_full`` of the filesystem that holds ``datadir``."""
    try:
        st = os.statvfs(datadir)
    except OSError:
        return {"datadir_free": None, "disk_full": False}  # no evidence of a full disk
    free = st.f_bavail * st.f_frsize
    return {"datadir_free": free, "disk_full": free < min_free}


def read_grastate(datadir: str) -> dict[str, Any] | None:
    """The parsed grastate.dat of ``datadir``, or None when there is none."""
    try:
        return parse_grastate((Path(datadir) / "grastate.dat").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


class GaleraBeacon:
    """Keeps one connection to the local server; reconnects after any error."""

    name = "galera"
    significant = frozenset(
        {
            "present",
            "running",
            "cluster_status",
            "local_state_comment",
            "cluster_size",
            "cluster_state_uuid",
            "ready",
            "connected",
            "synced",
            "seqno",
            "safe_to_bootstrap",
            "disk_full",
        }
    )

    def __init__(self, ctx: BeaconContext) -> None:
        self.socket = str(ctx.options["socket"])
        self.datadir = str(ctx.options["datadir"])
        self.user = str(ctx.options["user"])
        pw_file = ctx.options["password_file"]
        self.password = Path(pw_file).read_text().strip() if pw_file else ""
        self.interval = float(ctx.options["interval"])
        self.timeout = float(ctx.options["timeout"])
        self.min_free = int(ctx.options["min_free"])
        self._conn: pymysql.connections.Connection[Any] | None = None

    def _query(self) -> dict[str, str]:
        if self._conn is None:
            self._conn = sql_client().connect(
                unix_socket=self.socket,
                user=self.user,
                password=self.password,
                connect_timeout=self.timeout,
                ssl_disabled=True,  # a unix socket; PyMySQL would load the CA store each time
                read_timeout=self.timeout,
                write_timeout=self.timeout,
                autocommit=True,
            )
        with self._conn.cursor() as cur:
            cur.execute(_STATUS_SQL)
            return {str(name): str(value) for name, value in cur.fetchall()}

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sql_client().Error):
                conn.close()

    async def poll(self) -> Snapshot:
        """The node's wsrep state, or its saved position when it is down."""
        space = datadir_space(self.datadir, self.min_free)
        try:
            status = await asyncio.to_thread(self._query)
        except (sql_client().Error, OSError) as exc:
            self._drop()
            detail = f"{type(exc).__name__}: {exc}"
            grastate = await asyncio.to_thread(read_grastate, self.datadir)
            return {ITEM: {**down_item(grastate, detail[:200]), **space}}
        return {ITEM: {**status_item(status), **space}}

    async def close(self) -> None:
        """Close the connection."""
        await asyncio.to_thread(self._drop)
