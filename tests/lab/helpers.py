"""Probes for lab tests: VIP holders, HAProxy server states, an HTTP client loop, waits."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hactl.bus import EVENTS_STREAM, Bus
from hactl.bus.history import stored, stream_for
from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.lab.bus import LAB_ADMIN
from hactl.lab.net import exec_argv
from hactl.minion.admin_socket import admin_command_blocking
from hactl.minion.beacons.haproxy import parse_servers_state
from hactl.wire.envelope import Event, new_event
from hactl.wire.tags import TagGlob


def wait_until(pred: Callable[[], object], timeout: float, what: str, step: float = 0.02) -> float:
    """Poll ``pred`` (bounded); the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout:g}s")


def server_status(lab: L.Lab, node: str) -> dict[str, str]:
    """backend/server -> status (UP, DOWN, DRAIN, MAINT ...) on ``node``'s HAProxy."""
    return d.haproxy_servers(lab.node_dir(node) / "run/haproxy.sock")


def external_tls(lab: L.Lab) -> ssl.SSLContext:
    """A client context that trusts the lab's external-VIP CA (hactl/lab/lab.py makes it)."""
    return ssl.create_default_context(cafile=str(lab.dir / "external-ca.crt"))


@dataclass
class HttpLoop:
    """GET http(s)://VIP:PORT/ on a fresh connection every ``period`` s in a thread; records
    (start, ok). The timeouts bound a connect and an answer (benchmarks/failover.py: 0.1 and
    0.2 s, as a client that retries fast would)."""

    host: str
    #: an API stand-in's port (nova-api's): 5000 is the real Keystone, whose / answers 300
    port: int = 8774
    period: float = 0.02
    connect_timeout: float = 0.5
    answer_timeout: float = 0.5
    #: HTTPS, verified (the external VIP: :func:`external_tls`)
    tls: ssl.SSLContext | None = None
    samples: list[tuple[float, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _once(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), self.connect_timeout) as raw:
                raw.settimeout(self.answer_timeout)
                s = self.tls.wrap_socket(raw, server_hostname=self.host) if self.tls else raw
                s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            self.samples.append((t, self._once()))
            time.sleep(max(0.0, self.period - (time.monotonic() - t)))

    def __enter__(self) -> HttpLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def gaps(self, since: float = 0.0) -> list[float]:
        """Every interval between two answered requests after ``since`` with a failure in
        between (longer than 2.5 periods)."""
        ok = [t for t, good in self.samples if good and t >= since]
        return [b - a for a, b in itertools.pairwise(ok) if b - a > 2.5 * self.period]

    def longest_gap(self) -> float:
        """Longest time between two successful requests."""
        ok = [t for t, good in self.samples if good]
        return max((b - a for a, b in itertools.pairwise(ok)), default=0.0)

    def ok_since(self, since: float) -> bool:
        """A request succeeded after the monotonic time ``since``."""
        return any(good and t > since for t, good in list(self.samples))

    def failures(self, since: float = 0.0) -> int:
        """Requests that failed (after ``since``)."""
        return sum(1 for t, good in self.samples if not good and t >= since)


def recent_decisions(lab: L.Lab, since: str = "5m") -> str:
    """The reactor's and Galera steps' events of the last minutes, one line each (diagnostics)."""
    import json
    import subprocess

    try:
        res = subprocess.run(
            [L.HACTL, "--nats", lab.nats_url, "events", "tail", "--since", since, "--json"],
            capture_output=True,
            text=True,
            timeout=6,
            check=False,
            env=lab.cli_env(),
        )
        out = res.stdout
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    lines = []
    for line in out.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e["tag"].startswith(("hactl/reactor/", "hactl/event/galera/")):
            d = e["data"]
            what = d.get("reason") or d.get("error") or d.get("kind") or ""
            if d.get("rule") == "reconcile":  # which server, to what, and why
                what = f"{d['key']} {d.get('from')}->{d.get('to')} {what} ({d.get('fact')})"
            lines.append(f"{e['ts']:.2f} {e['tag']} {what}"[:300])
    return "\n".join(lines[-200:])


def synced_event(node: str, n: int) -> Event:
    """A galera beacon event of ``node`` turning Synced (fires the lab's lab-synced-probe rule)."""
    item = {"running": True, "synced": True, "cluster_status": "Primary", "cluster_size": 3}
    return new_event(
        f"hactl/beacon/{node}/galera",
        node,
        {
            "items": {"local": item},
            "resync": False,
            "changes": [{"item": "local", "field": "synced", "value": True, "prev": False, "n": n}],
        },
    )


async def stored_done(bus: Bus, rule: str) -> list[str]:
    """Trigger ids of every ``done`` of ``rule`` stored in the stream (batched direct gets:
    a person may not create consumers, hactl/auth/perms.py)."""
    since = datetime.now(UTC) - timedelta(days=1)
    glob = TagGlob.parse(f"hactl/reactor/{rule}/done")
    return [str(e.data["event_id"]) for e in await stored(bus, glob, since, EVENTS_STREAM, 20.0)]


async def stored_events(
    lab: L.Lab,
    glob: str,
    since: datetime,
    stream: str = "",
    who: str = LAB_ADMIN,
) -> list[Event]:
    """Events matching ``glob`` stored since ``since`` (read as ``who``; from the stream that
    holds them unless ``stream`` says), in-process: a CLI tail killed by its timeout on a
    loaded machine can lose what it had not printed."""
    bus = await Bus.connect(lab.nats_url, lab.client_auth(who), name="lab-read", timeout=5)
    got: list[Event] = []

    async def on_event(e: Event) -> None:
        got.append(e)

    try:
        compiled = TagGlob.parse(glob)
        await bus.replay(compiled, since, on_event, stream or stream_for(compiled), wait=15)
        await asyncio.sleep(0.5)
    finally:
        await bus.close()
    return got


def admin_states(lab: L.Lab, node: str) -> dict[str, str]:
    """backend/server -> administrative state (ready/drain/maint) on ``node``'s HAProxy."""
    try:
        text = admin_command_blocking(
            str(lab.node_dir(node) / "run/haproxy.sock"), "show servers state"
        )
        return parse_servers_state(text)
    except (OSError, ValueError):
        return {}


@dataclass
class DrainWatch:
    """Every ~0.3 s, in a thread: the servers of ``nodes`` whose key starts with one of
    ``prefixes`` that any HAProxy holds out of service (drain or maint), read from each
    HAProxy's own admin socket; ``seen`` maps ``"ctl2:be_nova/ctl3=drain"`` to the monotonic
    time it was first seen."""

    lab: L.Lab
    nodes: tuple[str, ...]
    prefixes: tuple[str, ...] = ("be_",)
    seen: dict[str, float] = field(default_factory=dict)
    samples: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for h in self.lab.net.nodes:
                for key, state in admin_states(self.lab, h).items():
                    server = key.rsplit("/", 1)[-1]
                    if key.startswith(self.prefixes) and server in self.nodes and state != "ready":
                        self.seen.setdefault(f"{h}:{key}={state}", now)
            self.samples += 1
            self._stop.wait(0.3)

    def __enter__(self) -> DrainWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def clients_line(f: dict[str, Any]) -> str:
    """What OpenStack's own clients saw over a fault (hactl.lab.workload's figures): the
    headline of a recovery figure; probes and drains are the second column."""
    parts = []
    if r := f.get("rpc"):
        parts.append(
            f"oslo.messaging {r['calls']} calls, {r['failed']} failed "
            f"({r['never_executed']} never run, {r['executed_but_failed']} run but reported "
            f"failed), {r['executed_twice']} run twice"
            + (
                f" ({r['twice_redelivered']} redelivered by the broker)"
                if r.get("twice_redelivered")
                else ""
            )
            + f", longest gap {r['longest_gap']:.2f} s"
            + (f" [{' | '.join(r['twice_detail'])}]" if r.get("twice_detail") else "")
        )
    if db := f.get("db"):
        parts.append(
            f"oslo.db {db['transactions']} transactions, {db['failed']} failed after retries"
            + (f" {db['errors']}" if db.get("errors") else "")
            + (
                f" ({db['committed_but_failed']} committed but reported failed)"
                if db.get("committed_but_failed")
                else ""
            )
            + f", longest write gap {db['longest_gap']:.2f} s, {db['rows_lost']} committed rows lost"
        )
    if ks := f.get("keystone"):
        parts.append(
            f"keystoneauth1 {ks['rounds']} token rounds, {ks['failed']} failed "
            f"({ks['validation_failed']} validations), longest gap {ks['longest_gap']:.2f} s"
        )
    return "; ".join(parts)


def minion_log(
    lab: L.Lab, node: str, event: str, since: datetime | None = None
) -> list[dict[str, Any]]:
    """The records of ``event`` in ``node``'s minion log (JSON lines), from ``since`` on."""
    after = since.isoformat().replace("+00:00", "Z") if since else ""
    out = []
    for line in (lab.node_dir(node) / "minion.log").read_text(errors="replace").splitlines():
        if event not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == event and str(rec.get("timestamp", "")) >= after:
            out.append(rec)
    return out


def never_wrong(f: dict[str, Any], cut: bool = False) -> None:
    """What a client must never see: a committed row lost, a call run twice. With ``cut`` (a
    broker's node cut off the network mid-fault) a call run twice is reported, not failed:
    AMQP delivers at least once, and an acknowledgement or a publish lost in the cut may be
    repeated (docs/clients.md); the clients line says how (``twice_detail``)."""
    r = f["rpc"]
    assert (cut or r["executed_twice"] == 0) and f["db"]["rows_lost"] == 0, f
    # a duplicate allowed is one the record of deliveries could explain: it was working
    assert not cut or r["deliveries_seen"] > 0, f


def haproxy_cmd(lab: L.Lab, node: str, command: str) -> str:
    """One admin command on ``node``'s HAProxy (a hand-made change, as an operator would)."""
    return admin_command_blocking(str(lab.node_dir(node) / "run/haproxy.sock"), command)


async def _settled_once(lab: L.Lab) -> str:
    bus = await Bus.connect(lab.nats_url, lab.client_auth(), name="lab-settle", timeout=5)
    try:
        for name in STREAMS:
            try:
                info = await asyncio.wait_for(bus.js.stream_info(name), 2)
            except Exception as exc:  # not found (a bucket no master made yet) or no answer
                if "not found" in str(exc).lower():
                    continue
                return f"{name}: {type(exc).__name__}"
            cl = info.cluster
            if cl is not None and (not cl.leader or not all(r.current for r in cl.replicas or [])):
                return f"{name}: leader {cl.leader!r}, replicas not all current"
        return ""
    finally:
        await bus.close()


STREAMS = (
    "HACTL_EVENTS",
    "HACTL_JOBS",
    "KV_HACTL_CLUSTER",
    "KV_HACTL_LEASES",
    "KV_HACTL_LOCKS",
    "KV_HACTL_MAINT",
)


def jetstream_settled(lab: L.Lab, timeout: float = 60) -> float:
    """Wait until every hactl stream has a leader and current replicas (after a heal, the
    raft groups catch up before a master can start)."""
    why = ["?"]

    def ok() -> bool:
        why[0] = asyncio.run(_settled_once(lab))
        return not why[0]

    try:
        return wait_until(ok, timeout, "JetStream settled", step=0.5)
    except AssertionError:
        raise AssertionError(f"JetStream not settled: {why[0]}") from None


NFT_TABLE = "hactl_lab_partition"


def nft(lab: L.Lab, node: str, *script: str) -> None:
    """nft commands inside ``node``'s namespace."""
    for line in script:
        subprocess.run(exec_argv(lab.net, node, ["nft", *line.split()]), check=True, timeout=10)


def _cut(lab: L.Lab, node: str, *rules: str, verdict: str = "drop") -> None:
    """Apply ``verdict`` to what ``rules`` match in ``node``'s namespace, both hooks (one nft
    table)."""
    nft(
        lab,
        node,
        f"add table inet {NFT_TABLE}",
        f"add chain inet {NFT_TABLE} in {{ type filter hook input priority 0 ; }}",
        f"add chain inet {NFT_TABLE} out {{ type filter hook output priority 0 ; }}",
        *(f"add rule inet {NFT_TABLE} {r} {verdict}" for r in rules),
    )


def refuse_port(lab: L.Lab, node: str, port: int) -> None:
    """``node`` answers connections to ``port`` with a TCP reset, as a service that is down
    does (a check fails at once, not after its connect timeout); :func:`heal_galera` undoes
    it."""
    _cut(lab, node, f"in tcp dport {port}", verdict="reject with tcp reset")


def cut_galera(lab: L.Lab, node: str) -> None:
    """Drop ``node``'s Galera replication traffic (port 4567) both ways: it goes non-Primary
    while mariadbd keeps answering on 3306 (HAProxy's TCP check still passes)."""
    _cut(
        lab,
        node,
        "in tcp dport 4567",
        "in tcp sport 4567",
        "out tcp dport 4567",
        "out tcp sport 4567",
    )


def cut_vrrp(lab: L.Lab, node: str) -> None:
    """Drop ``node``'s VRRP adverts both ways (IP protocol 112; the multicast filter a switch
    or a firewall change can add) while everything else still flows: the split brain that
    hactl's minions can see and keepalived cannot."""
    _cut(lab, node, "in ip protocol vrrp", "out ip protocol vrrp")


def cut_rabbit(lab: L.Lab, node: str) -> None:
    """Drop ``node``'s Erlang distribution traffic to the other brokers (port 25672, not on
    loopback) while AMQP, HTTP and NATS still flow: a RabbitMQ network partition."""
    _cut(
        lab,
        node,
        "in iifname != lo tcp dport 25672",
        "in iifname != lo tcp sport 25672",
        "out oifname != lo tcp dport 25672",
        "out oifname != lo tcp sport 25672",
    )


def heal_galera(lab: L.Lab, node: str) -> None:
    """Undo :func:`cut_galera`, :func:`cut_vrrp`, :func:`cut_rabbit` or :func:`refuse_port`
    (no error if it was not cut)."""
    with contextlib.suppress(subprocess.CalledProcessError):
        nft(lab, node, f"delete table inet {NFT_TABLE}")


def master_server(lab: L.Lab) -> str:
    """The node whose NATS server the lab master's connection uses now (from its own log)."""
    server = ""
    for line in (lab.dir / "master.log").read_text().splitlines():
        if '"nats_connected"' in line or '"nats_reconnected"' in line:
            server = json.loads(line).get("server", "") or server
    host = server.split(":")[0]
    return next((n for n in lab.net.nodes if lab.net.address(n) == host), lab.net.nodes[0])


def master_metric(
    lab: L.Lab, sample: str, value: str, label: str = "fault", name: str = "master"
) -> float:
    """One sample of a lab master's Prometheus metrics (``hactl_master_repair_seconds_count``
    whose ``label`` is ``value``), parsed with prometheus-client's parser; 0 when it has none
    yet."""
    from prometheus_client.parser import text_string_to_metric_families

    from hactl.lab.masters import metrics_port

    url = f"http://127.0.0.1:{metrics_port(lab, name)}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and s.labels.get(label) == value:
                return float(s.value)
    return 0.0


def hactl(lab: L.Lab, *args: str, timeout: float = 30) -> str:
    """``hactl --nats <lab> ARGS`` as the lab's admin; its stdout (it must exit 0)."""
    res = subprocess.run(
        [L.HACTL, "--nats", lab.nats_url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=lab.cli_env(),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout
