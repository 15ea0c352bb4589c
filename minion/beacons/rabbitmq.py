"""The ``rabbitmq`` beacon: is the broker up, who is in the cluster, partitions and alarms.

Never spawns ``rabbitmqctl`` (each call boots an Erlang VM, ~1 s). Two cheap probes instead:

- an AMQP probe: connect to the listener, send the protocol header and read the broker's
  ``Connection.Start`` frame -- the broker itself answers, not just a TCP port;
- the management HTTP API ``GET /api/nodes``: every cluster member with ``running``,
  ``partitions`` and its memory/disk alarms (needs the ``rabbitmq_management`` plugin; without
  it the beacon still reports the AMQP state and says the API is unavailable).

Options: ``node`` (this node's name, e.g. ``rabbit@ctl1``, required), ``amqp``
(``host:port``, default ``127.0.0.1:5672``), ``api`` (default ``http://127.0.0.1:15672``),
``user`` (default ``guest``), ``password`` or ``password_file``, ``interval`` (default 1 s),
``timeout`` (default 1 s), ``pidfile`` (the broker's Erlang VM: ``process`` then tells a
paused broker -- alive, not answering AMQP -- from a dead one), ``service`` (the minion's
service that runs it, for a repair's ``service.restart``), ``epmd_port`` (default 4369) and
``resume_grace`` (default 30 s, below). One item, ``local``, with ``down_since`` (when AMQP last
stopped answering, None while it answers), ``partitioned_since`` (when this broker's own
partition list last became non-empty, None while it is empty; kept while the API cannot be
read), and for a paused broker ``reachable`` and ``stuck``:

- ``reachable``: while the broker is paused (its VM alive, AMQP silent), whether a majority of
  its cluster (the members the API last listed, this broker counted) answers at its epmd with
  its node registered -- what pause_minority waits for to resume; None when it cannot tell (no
  member list: the minion started while the broker was paused) or the broker is not paused;
- ``stuck``: paused although that majority has been reachable for over ``resume_grace`` --
  RabbitMQ resumes by itself within seconds of seeing it, so the pause outlived the partition
  (rabbitmq-server#2175; its resume hanging on Erlang's ``global``); None when ``reachable``
  is, False for a broker booting (its VM started after AMQP went silent: a restart, a roll, a
  supervisor's start -- not a pause) or held by hactl's own planned work on ``service`` (a
  roll's ``stop_app`` leaves the VM up). Significant, so the report comes the moment it
  holds (the repair rule acts on it).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hactl.minion.beacons.base import BeaconContext, Item, Snapshot, close_quietly, open_bounded
from hactl.minion.executors.base import ServiceCommands
from hactl.minion.procfind import started_at

ITEM = "local"
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
EPMD_PORT_PLEASE2 = 122  # epmd's PORT_PLEASE2_REQ ('z'); its answer starts with 119 ('w')


def parse_amqp_start(frame: bytes) -> bool:
    """True when ``frame`` starts an AMQP 0-9-1 method frame on channel 0 (Connection.Start)."""
    # frame: type(1)=1, channel(2)=0, size(4), then class 10 method 10
    return (
        len(frame) >= 11
        and frame[0] == 1
        and frame[1:3] == b"\x00\x00"
        and frame[7:11] == (b"\x00\x0a\x00\x0a")
    )


def parse_nodes(payload: Any, local: str) -> Item:
    """``/api/nodes`` JSON -> members, running members, partitions and alarms."""
    if not isinstance(payload, list):
        raise ValueError("not a node list")
    members, running, partitions, alarms = [], [], set(), []
    for node in payload:
        if not isinstance(node, dict) or not isinstance(node.get("name"), str):
            raise ValueError("node without a name")
        name = node["name"]
        members.append(name)
        if node.get("running"):
            running.append(name)
        for other in node.get("partitions") or []:
            partitions.add(f"{name}|{other}")
        for alarm in ("mem_alarm", "disk_free_alarm"):
            if node.get(alarm):
                alarms.append(f"{name}:{alarm}")
    return {
        "members": sorted(members),
        "running_members": sorted(running),
        "partitions": sorted(partitions),
        "alarms": sorted(alarms),
        "local_listed": local in members,
    }


def since_partitioned(
    since: float | None, node: str, partitions: list[str], now: float
) -> float | None:
    """When ``node``'s own partition list (``node|other`` pairs) became non-empty: ``since``
    while it stays so, ``now`` when it just did, None while it is empty."""
    if not any(p.startswith(f"{node}|") for p in partitions):
        return None
    return now if since is None else since


def epmd_request(name: str) -> bytes:
    """epmd's PORT_PLEASE2_REQ for the node ``name`` (the part before ``@``)."""
    body = bytes([EPMD_PORT_PLEASE2]) + name.encode()
    return len(body).to_bytes(2, "big") + body


def epmd_registered(answer: bytes) -> bool:
    """True when epmd's PORT2_RESP says the node is registered (result 0)."""
    return len(answer) >= 2 and answer[0] == 119 and answer[1] == 0


def majority(members: list[str], answering: int) -> bool:
    """True when ``answering`` of ``members`` (this broker counted) are a strict majority."""
    return 2 * answering > len(members)


async def epmd_probe(member: str, port: int, timeout: float) -> bool:
    """True when ``member``'s (``name@host``) epmd answers with its node registered."""
    name, _, host = member.partition("@")
    opened = await open_bounded(host, port, timeout)
    if isinstance(opened, str):
        return False
    reader, writer = opened
    try:
        writer.write(epmd_request(name))
        await writer.drain()
        return epmd_registered(await asyncio.wait_for(reader.read(16), timeout))
    except (OSError, TimeoutError):
        return False
    finally:
        await close_quietly(writer)


async def amqp_probe(host: str, port: int, timeout: float) -> tuple[bool, str]:
    """(up, detail): the broker answered the protocol header with Connection.Start."""
    opened = await open_bounded(host, port, timeout)
    if isinstance(opened, str):
        return False, opened
    reader, writer = opened
    try:
        writer.write(AMQP_HEADER)
        await writer.drain()
        frame = await asyncio.wait_for(reader.read(64), timeout)
        return (True, "Connection.Start") if parse_amqp_start(frame) else (False, f"{frame[:16]!r}")
    except (OSError, TimeoutError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        await close_quietly(writer)


async def http_get_json(url: str, auth: str, timeout: float) -> Any:
    """GET ``url`` (HTTP/1.0, basic auth) and decode the JSON body; raises on any failure."""
    status, body = await http_get(url, auth, timeout)
    if status != 200:
        raise ValueError(f"HTTP {status} from {url}")
    return json.loads(body)


def parse_local_alarms(status: int, body: bytes) -> list[str]:
    """``/api/health/checks/local-alarms`` -> this node's resource alarms, read when asked
    (not from the statistics ``/api/nodes`` shows, seconds late): 200 is none, 503 lists
    them as ``node:resource``; anything else raises ValueError."""
    if status == 200:
        return []
    if status != 503:
        raise ValueError(f"HTTP {status} from the local-alarms check")
    alarms = json.loads(body).get("alarms")
    if not isinstance(alarms, list):
        raise ValueError("a failed local-alarms check without alarms")
    return sorted(f"{a.get('node')}:{a.get('resource')}" for a in alarms if isinstance(a, dict))


async def http_get(url: str, auth: str, timeout: float) -> tuple[int, bytes]:
    """GET ``url`` (HTTP/1.0, basic auth): its status and body; raises on a transport
    failure or an answer that is not HTTP."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(
            f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {host}\r\n"
            f"Authorization: Basic {auth}\r\nAccept: application/json\r\n\r\n".encode()
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        await close_quietly(writer)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[1].isdigit():
        raise ValueError(f"not an HTTP answer from {url}")
    return int(status[1]), body


class RabbitmqBeacon:
    """AMQP probe and management API each poll; both bounded by ``timeout``."""

    name = "rabbitmq"
    significant = frozenset(
        {
            "present",
            "running",
            "api",
            "members",
            "running_members",
            "partitions",
            "alarms",
            "local_alarms",
            "stuck",
        }
    )

    def __init__(self, ctx: BeaconContext) -> None:
        opts = ctx.options
        self.node = str(opts["node"])
        host, _, port = str(opts["amqp"]).rpartition(":")
        self.amqp = (host or "127.0.0.1", int(port))
        self.api = str(opts["api"]).rstrip("/")
        pw_file = opts["password_file"]
        password = Path(pw_file).read_text().strip() if pw_file else str(opts["password"])
        user = str(opts["user"])
        self.auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.interval = float(opts["interval"])
        self.timeout = float(opts["timeout"])
        self.pidfile = ServiceCommands(pidfile=str(opts["pidfile"])) if opts["pidfile"] else None
        self.down_since: float | None = None
        self.partitioned_since: float | None = None
        self.service = str(opts["service"])
        self.held = ctx.held
        self.epmd_port = int(opts["epmd_port"])
        self.resume_grace = float(opts["resume_grace"])
        self.members: list[str] = []  # the cluster as the API last listed it
        self.reachable_since: float | None = None

    async def poll(self) -> Snapshot:
        """The local broker's state and its view of the cluster."""
        up, detail = await amqp_probe(*self.amqp, self.timeout)
        if up:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = time.time()
        item: Item = {"node": self.node, "running": up, "detail": detail}
        item["down_since"] = self.down_since
        if self.service:
            item["service"] = self.service  # what a repair restarts (minion.yaml services)
        vm_since = None
        if self.pidfile is not None:
            # its Erlang VM alive while AMQP does not answer: paused (pause_minority), not dead
            pid = self.pidfile.pid()
            item["process"] = pid is not None
            if pid is not None and not up:  # only a silent broker's VM age matters
                vm_since = started_at(pid)
        # paused: AMQP went silent while this same VM ran on; a VM started since is booting
        # (a restart, a roll, a supervisor's start): never "stuck", whatever its peers say
        # (a boot of 8-10 s looked stuck after 5 s, and the rule restarted brokers mid-boot)
        booting = vm_since is None or self.down_since is None or vm_since > self.down_since
        # nor while hactl itself stops or restarts it (a roll: its stop_app leaves the VM up)
        booting = booting or bool(self.service and self.held(self.service))
        paused = not up and bool(item.get("process"))
        item.update(await self._paused(paused, booting))
        try:
            nodes = await http_get_json(f"{self.api}/api/nodes", self.auth, self.timeout)
            item.update(parse_nodes(nodes, self.node), api=True)
        except (OSError, TimeoutError, ValueError) as exc:
            item.update(
                partitioned_since=self.partitioned_since,
                api=False,
                api_detail=f"{type(exc).__name__}: {exc}"[:200],
                members=None,
                running_members=None,
                partitions=None,
                alarms=None,
                local_alarms=None,
            )
            return {ITEM: item}
        self.members = list(item["members"])
        self.partitioned_since = since_partitioned(
            self.partitioned_since, self.node, item["partitions"], time.time()
        )
        item["partitioned_since"] = self.partitioned_since
        item["local_alarms"] = await self._local_alarms()
        return {ITEM: item}

    async def _paused(self, paused: bool, booting: bool) -> Item:
        """``reachable`` and ``stuck`` (the module's docstring); the peers are probed only
        while the broker is paused, all at once, each bounded by ``timeout``."""
        peers = [m for m in self.members if m != self.node]
        if paused and booting:
            self.reachable_since = None
            return {"reachable": None, "stuck": False}
        if not paused or not peers:
            self.reachable_since = None
            return {"reachable": None, "stuck": None}
        probes = [epmd_probe(m, self.epmd_port, self.timeout) for m in peers]
        answering = 1 + sum(await asyncio.gather(*probes))
        if not majority(self.members, answering):
            self.reachable_since = None
            return {"reachable": False, "stuck": False}
        now = time.time()
        if self.reachable_since is None:
            self.reachable_since = now
        return {"reachable": True, "stuck": now - self.reachable_since > self.resume_grace}

    async def _local_alarms(self) -> list[str] | None:
        """This broker's own alarms from its health check; None when the check cannot be
        read (a broker older than 3.8.10 has none): the reconciler then reads the cluster's
        list, and the rest of the report stands."""
        try:
            check = await http_get(
                f"{self.api}/api/health/checks/local-alarms", self.auth, self.timeout
            )
            return parse_local_alarms(*check)
        except (OSError, TimeoutError, ValueError):
            return None

    async def close(self) -> None:
        """Nothing held between polls."""
