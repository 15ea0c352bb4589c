"""The ``service`` beacon: TCP or HTTP health of configured endpoints (the OpenStack APIs).

Options: ``endpoints`` ([{name, url}] with ``tcp://host:port`` or ``http://host:port/path``),
``timeout`` (default 1 s), ``interval`` (default 5 s). An HTTP endpoint is up when it answers
with a status below 500.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from hactl.minion.beacons.base import BeaconContext, Snapshot, close_quietly, open_bounded


async def check_endpoint(url: str, timeout: float) -> tuple[bool, str]:
    """(up, detail) for one endpoint; never raises."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    if parts.scheme not in ("tcp", "http") or not host or port is None:
        return False, f"unsupported url {url!r}"
    opened = await open_bounded(host, port, timeout)
    if isinstance(opened, str):
        return False, opened
    reader, writer = opened
    try:
        if parts.scheme == "tcp":
            return True, "connected"
        path = parts.path or "/"
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        fields = line.decode("latin-1").split()
        if len(fields) < 2 or not fields[1].isdigit():
            return False, f"not HTTP: {line[:60]!r}"
        code = int(fields[1])
        return code < 500, f"HTTP {code}"
    except (OSError, TimeoutError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        await close_quietly(writer)


class ServiceBeacon:
    """Checks every endpoint concurrently each interval."""

    name = "service"
    significant = frozenset({"up", "present"})

    def __init__(self, ctx: BeaconContext) -> None:
        self.endpoints = {str(e["name"]): str(e["url"]) for e in ctx.options["endpoints"]}
        self.timeout = float(ctx.options["timeout"])
        self.interval = float(ctx.options["interval"])

    async def poll(self) -> Snapshot:
        """Every endpoint's state."""
        names = sorted(self.endpoints)
        results = await asyncio.gather(
            *(check_endpoint(self.endpoints[n], self.timeout) for n in names)
        )
        return {
            n: {"url": self.endpoints[n], "up": up, "detail": detail}
            for n, (up, detail) in zip(names, results, strict=True)
        }

    async def close(self) -> None:
        """Nothing held between polls."""
