"""What a client of the VIP sees, for benchmarks/failover.py: a fresh HTTP connection every
20 ms, and a writer committing a numbered row every 20 ms through the VIP."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pymysql


@dataclass
class Client:
    """A fresh connection every ``period``; records (start, ok) of each request."""

    host: str
    port: int = 5000
    period: float = 0.02
    samples: list[tuple[float, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _once(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.1) as s:
                s.settimeout(0.2)
                s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            self.samples.append((t, self._once()))
            time.sleep(max(0.0, self.period - (time.monotonic() - t)))

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def gaps(self, since: float) -> list[float]:
        """Every interval between two answered requests after ``since`` longer than two
        periods (a request that failed in between)."""
        ok = [t for t, good in self.samples if good and t >= since]
        return [b - a for a, b in itertools.pairwise(ok) if b - a > 2.5 * self.period]

    def failed(self, since: float) -> int:
        """Requests that failed after ``since``."""
        return sum(1 for t, good in self.samples if t >= since and not good)


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
                        connect_timeout=0.2,
                        read_timeout=2,
                        write_timeout=2,
                        ssl_disabled=True,
                    )
                self.seq += 1
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO w (id) VALUES (%s)", (self.seq,))
                conn.commit()
                self.confirmed.append(self.seq)
                ok = True
            except (pymysql.Error, OSError):
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
