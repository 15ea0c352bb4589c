"""Clients of the VIP for benchmarks/failover.py: a writer committing a numbered row every
20 ms through the VIP, and an AMQP client opening a fresh connection every 20 ms (the HTTP
client is tests/lab/helpers.HttpLoop)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pymysql

from tests.lab.helpers import HttpLoop


@dataclass
class Writer:
    """Commits one numbered row every ``period`` through the VIP; reconnects on any error.
    ``samples``: (start, committed) per attempt; ``confirmed``: ids whose COMMIT returned."""

    host: str
    password: str
    period: float = 0.02
    samples: list[tuple[float, bool]] = field(default_factory=list)
    confirmed: list[int] = field(default_factory=list)
    seq: int = 0
    #: the issue's client: 100 ms to connect, 200 ms per request (a commit hung on a cut
    #: writer is abandoned and retried through the VIP, as a client that retries fast would)
    connect_timeout: float = 0.1
    request_timeout: float = 0.2

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn: Any = None
        while not self._stop.is_set():
            t = time.monotonic()
            ok = False
            try:
                if conn is None:
                    conn = pymysql.connect(
                        host=self.host,
                        port=3306,
                        user="bench",
                        password=self.password,
                        database="bench",
                        connect_timeout=self.connect_timeout,
                        read_timeout=self.request_timeout,
                        write_timeout=self.request_timeout,
                        ssl_disabled=True,
                    )
                self.seq += 1
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO w (id) VALUES (%s)", (self.seq,))
                conn.commit()
                self.confirmed.append(self.seq)
                ok = True
            except Exception:  # pymysql can raise AttributeError on a broken
                # connection; any error is a failed attempt, and the thread must not die (a
                # dead thread took no more samples: one run waited 60 s for "writes resumed")
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None
            self.samples.append((t, ok))
            time.sleep(max(0.0, self.period - (time.monotonic() - t)))
        with contextlib.suppress(Exception):
            conn.close()

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def gap(self, since: float) -> float:
        """The longest time between two committed writes after ``since``."""
        ok = [t for t, good in self.samples if good and t >= since]
        return max((b - a for a, b in itertools.pairwise(ok)), default=0.0)


@dataclass
class AmqpLoop(HttpLoop):
    """A fresh TCP connection to ``host:5672`` every ``period``: the AMQP 0-9-1 protocol
    header sent, a broker's ``Connection.Start`` method frame (type 1) expected back -- a
    broker that answers, through HAProxy, not just a port that accepts."""

    port: int = 5672

    def _once(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), self.connect_timeout) as s:
                s.settimeout(self.answer_timeout)
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return s.recv(1) == b"\x01"
        except OSError:
            return False
