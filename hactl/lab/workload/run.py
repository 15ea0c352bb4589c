"""The lab's OpenStack workload: the real client libraries, configured as a service would be.

Run as its own process (oslo.config keeps one global configuration, and oslo.messaging's
threads must not share the test's process)::

    python -m hactl.lab.workload.run --config clients.conf --out samples.json [--seconds N]

``--config`` is an oslo.config file (given again, files are merged as a service's are): the one
hactl renders for the controllers' services (``state clients``) and the workload's own
``[database] connection``, so the clients use exactly the settings hactl chose. Until SIGTERM (or
``--seconds``):

- **RPC** (oslo.messaging, ``[DEFAULT] transport_url`` and ``[oslo_messaging_rabbit]``): an
  RPC server on topic ``hactl-workload`` with one endpoint, and ``--callers`` threads each
  calling it in a loop (``--period`` apart, ``--rpc-timeout`` per call). The server counts the
  executions of each call's sequence number.
- **Database** (oslo.db's enginefacade and ``wrap_db_retry``, ``[database]``): a writer
  committing one numbered row every ``--db-period`` in its own transaction, retried as a
  service's API method is (deadlock and disconnect); the ids whose commit returned are kept,
  and at the end the table is read back.

- **Keystone** (keystoneauth1, with ``--keystone-issue``; ``keystone.py``): a token issued on
  each controller in turn, validated through the VIP.

The samples are written as JSON (``hactl.lab.workload.report`` turns them into figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import oslo_messaging as om
from oslo_config import cfg
from oslo_db import api as db_api
from oslo_db import options as db_options
from oslo_db.sqlalchemy import enginefacade
from oslo_messaging._drivers import amqpdriver
from sqlalchemy import text

from hactl.lab.workload import keystone as keystone_client

TOPIC = "hactl-workload"


class _Ctx:
    """The request context enginefacade hangs its session on (a service's RequestContext)."""


def _rpc(args: argparse.Namespace, stop: threading.Event, out: dict[str, Any]) -> list[Any]:

    executed: Counter[int] = Counter()
    redelivered: Counter[int] = Counter()
    calls: list[tuple[float, float, int, bool, str]] = []
    #: every delivery the RPC server's listener got: (seq, time, redelivered, broker, message
    #: id), and every execution: (seq, time) -- a call run twice explains itself with them
    deliveries: list[tuple[int, float, bool, str, str]] = []
    runs: list[tuple[int, float]] = []
    out["rpc"] = {
        "calls": calls,
        "executed": executed,
        "redelivered": redelivered,
        "deliveries": deliveries,
        "runs": runs,
    }
    _record_deliveries(redelivered, deliveries)

    class Endpoint:
        target = om.Target(version="1.0")

        def work(self, ctxt: Any, seq: int) -> int:
            executed[seq] += 1
            runs.append((seq, time.time()))
            return seq

    # separate transports: the server's and the callers' connections fail independently
    server = om.get_rpc_server(
        om.get_rpc_transport(cfg.CONF),
        om.Target(topic=args.topic, server="workload"),
        [Endpoint()],
        executor="threading",
    )
    server.start()
    client = om.get_rpc_client(
        om.get_rpc_transport(cfg.CONF), om.Target(topic=args.topic), timeout=args.rpc_timeout
    )
    counter = iter(range(1, 1 << 62))
    lock = threading.Lock()

    def caller() -> None:
        while not stop.is_set():
            with lock:
                seq = next(counter)
            t = time.time()
            try:
                client.call({}, "work", seq=seq)
                ok, err = True, ""
            except om.MessagingTimeout:
                ok, err = False, "timeout"
            except Exception as exc:  # every failure a caller sees is a sample
                ok, err = False, type(exc).__name__
            calls.append((t, time.time(), seq, ok, err))
            stop.wait(args.period)

    threads = [
        threading.Thread(target=caller, daemon=True, name=f"caller-{i}")
        for i in range(args.callers)
    ]
    for th in threads:
        th.start()

    def close() -> None:
        for th in threads:
            th.join(args.rpc_timeout + 5)
        server.stop()
        server.wait()

    return [close]


def _record_deliveries(
    redelivered: Counter[int], deliveries: list[tuple[int, float, bool, str, str]]
) -> None:
    """Record each delivery to the RPC server's listener, and count per call those the
    broker flagged ``redelivered``: a message it had handed to a consumer and took back
    unacknowledged (AMQP's at-least-once). oslo.messaging hides the flag and the broker from
    endpoints, so the listener's consumer callback is wrapped: the evidence that tells a call
    run twice because an acknowledgement was lost with its connection from one run twice for
    any other reason (a publish sent twice)."""
    listener = amqpdriver.RpcAMQPListener
    if getattr(listener, "_hactl_recording", False):
        return
    consume = listener.__call__

    def recording(self: Any, message: Any) -> None:
        raw = getattr(message, "_raw_message", None)
        info = getattr(raw, "delivery_info", None) or {}
        body = message if isinstance(message, dict) else {}
        seq = (body.get("args") or {}).get("seq")
        if isinstance(seq, int):
            again = bool(info.get("redelivered"))
            if again:
                redelivered[seq] += 1
            kombu = getattr(getattr(self, "conn", None), "connection", None)
            broker = str(getattr(kombu, "host", "") or "")
            deliveries.append((seq, time.time(), again, broker, str(body.get("_unique_id", ""))))
        consume(self, message)

    listener.__call__ = recording  # lab instrumentation only (oslo.messaging is untyped)
    listener._hactl_recording = True  # marks the wrap done


def _db(args: argparse.Namespace, stop: threading.Event, out: dict[str, Any]) -> list[Any]:

    context = enginefacade.transaction_context()
    context.configure(**{k: v for k, v in cfg.CONF.database.items() if v is not None})
    with context.writer.using(_Ctx()) as session:
        session.execute(
            text("CREATE TABLE IF NOT EXISTS workload (id BIGINT PRIMARY KEY, at DOUBLE)")
        )
        base = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM workload")).scalar()
    txns: list[tuple[float, float, int, bool, str]] = []
    out["db"] = {"txns": txns, "stored": [], "read_back": False}

    @db_api.wrap_db_retry(  # type: ignore[untyped-decorator]  # oslo.db ships no types
        retry_on_deadlock=True, retry_on_disconnect=True, max_retries=20
    )
    def write(seq: int) -> None:
        with context.writer.using(_Ctx()) as session:
            session.execute(
                text("INSERT INTO workload (id, at) VALUES (:id, :at)"),
                {"id": seq, "at": time.time()},
            )

    first = int(base or 0) + 1
    out["db"]["first"] = first

    def writer() -> None:
        seq = first
        while not stop.is_set():
            t = time.time()
            err = ""
            try:
                write(seq)
                ok = True
            except Exception as exc:  # failed after oslo.db's retries: a sample, not an end
                ok = False
                cause = getattr(exc, "inner_exception", None) or exc.__cause__ or exc
                code = getattr(cause, "args", ("",))[0] if getattr(cause, "args", None) else ""
                err = (
                    f"{type(exc).__name__}:{code}" if isinstance(code, int) else type(exc).__name__
                )
            txns.append((t, time.time(), seq, ok, err))
            seq += 1
            stop.wait(args.db_period)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()

    def close() -> None:
        thread.join(120)
        with context.reader.using(_Ctx()) as session:
            rows = session.execute(text("SELECT id FROM workload WHERE id >= :f"), {"f": first})
            out["db"]["stored"] = [int(r[0]) for r in rows]
        out["db"]["read_back"] = True

    return [close]


def main(argv: list[str] | None = None) -> None:
    """Run the workload until SIGTERM or ``--seconds``; write the samples."""
    p = argparse.ArgumentParser(prog="python -m hactl.lab.workload.run")
    p.add_argument(
        "--config",
        action="append",
        required=True,
        help="oslo.config file (hactl's clients state; again for the service's own, merged)",
    )
    p.add_argument("--out", required=True, help="where the samples go (JSON)")
    p.add_argument("--seconds", type=float, default=0.0, help="0: until SIGTERM")
    p.add_argument("--no-rpc", action="store_true")
    p.add_argument("--no-db", action="store_true")
    p.add_argument("--topic", default=TOPIC, help="the RPC server's topic")
    p.add_argument("--callers", type=int, default=4)
    p.add_argument("--period", type=float, default=0.05)
    p.add_argument("--rpc-timeout", type=float, default=10.0)
    p.add_argument("--db-period", type=float, default=0.02)
    p.add_argument("--ready", help="a file written once both clients work")
    keystone_client.add_arguments(p)
    args = p.parse_args(argv)

    # the clients' own account of a fault, timed (workload.log): oslo.messaging's reconnects
    # ("Reconnected to AMQP server on ...") and oslo.db's retries, beside the samples
    logging.basicConfig(  # force: an import configured the root logger without times
        level=logging.WARNING,
        format="%(asctime)s.%(msecs)03d %(threadName)s %(name)s %(levelname)s %(message)s",
        force=True,
    )
    logging.getLogger("oslo.messaging").setLevel(logging.INFO)
    logging.getLogger("oslo_messaging").setLevel(logging.INFO)
    db_options.set_defaults(cfg.CONF)
    cfg.CONF([a for f in args.config for a in ("--config-file", f)], project="hactl-workload")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    out: dict[str, Any] = {"started": time.time()}
    closers = []
    if not args.no_rpc:
        closers += _rpc(args, stop, out)
    if not args.no_db:
        closers += _db(args, stop, out)
    if args.keystone_issue:
        closers += keystone_client.start(args, stop, out)
    if args.ready:
        _wait_working(out, stop)
        Path(args.ready).write_text(f"{time.time()}\n")
    stop.wait(args.seconds or None)
    stop.set()
    out["stopping"] = time.time()  # the clients' last moment of work (closing is not)
    # the database's closer first (it reads back the stored rows: "rows lost" needs them),
    # each bounded, so that the samples are written before whoever stopped us gives up
    # (an RPC server left on a broker cut off for 60 s once held the process past 90 s)
    for close, budget in zip(reversed(closers), (40.0, 30.0, 30.0), strict=False):
        done = threading.Thread(target=close, daemon=True)
        done.start()
        done.join(budget)
        if done.is_alive():
            out.setdefault("unclosed", []).append(budget)
    out["stopped"] = time.time()
    Path(args.out).write_text(json.dumps(out))


def _wait_working(out: dict[str, Any], stop: threading.Event) -> None:
    """Until a call and a transaction succeeded (a fault before that measures nothing)."""
    while not stop.is_set():
        rpc_ok = "rpc" not in out or any(c[3] for c in out["rpc"]["calls"][-20:])
        db_ok = "db" not in out or any(t[3] for t in out["db"]["txns"][-20:])
        ks = out.get("keystone")
        ks_ok = ks is None or any(s[3] for s in ks["samples"][-20:])
        if rpc_ok and db_ok and ks_ok:
            return
        stop.wait(0.05)


if __name__ == "__main__":
    main()
