"""The ``service`` beacon: TCP or HTTP health of configured endpoints (the OpenStack APIs).

Options: ``endpoints`` ([{name, url}] with ``tcp://host:port``, ``http://host:port/path`` or
``https://host:port/path``), ``ca`` (the CA file that signs the https endpoints' certificates;
default the system's), ``timeout`` (default 1 s), ``interval`` (default 5 s); an endpoint may
carry its own ``ca``. An HTTP(S) endpoint is up when it answers with a status below 500; an
https endpoint whose certificate does not verify (CA, expiry, the URL's host name or address)
is down, with the reason.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from hactl.errors import ConfigError
from hactl.minion.beacons.base import BeaconContext, Snapshot, close_quietly, open_bounded

SCHEMES = ("tcp", "http", "https")


def tls_context(ca: str) -> ssl.SSLContext:
    """A verifying client context: ``ca``'s certificates, or the system's when empty."""
    try:
        return ssl.create_default_context(cafile=ca or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"beacons.service: cannot load the CA file {ca!r}: {exc}") from None


async def check_endpoint(
    url: str, timeout: float, tls: ssl.SSLContext | None = None
) -> tuple[bool, str]:
    """(up, detail) for one endpoint; never raises. ``tls`` verifies an https endpoint
    (default: the system's CAs)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    if parts.scheme not in SCHEMES or not host or port is None:
        return False, f"unsupported url {url!r}"
    if parts.scheme == "https":
        opened = await open_bounded(host, port, timeout, tls or tls_context(""))
    else:
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
        self.endpoints, self.tls = endpoints(ctx.options)
        self.timeout = float(ctx.options["timeout"])
        self.interval = float(ctx.options["interval"])

    async def poll(self) -> Snapshot:
        """Every endpoint's state."""
        names = sorted(self.endpoints)
        results = await asyncio.gather(
            *(check_endpoint(self.endpoints[n], self.timeout, self.tls.get(n)) for n in names)
        )
        return {
            n: {"url": self.endpoints[n], "up": up, "detail": detail}
            for n, (up, detail) in zip(names, results, strict=True)
        }

    async def close(self) -> None:
        """Nothing held between polls."""


def endpoints(options: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, ssl.SSLContext]]:
    """The checked ``endpoints`` option: {name: url}, and {name: TLS context} for the https
    ones (each CA file loaded once); ConfigError for a malformed entry or an unreadable CA."""
    urls: dict[str, str] = {}
    tls: dict[str, ssl.SSLContext] = {}
    contexts: dict[str, ssl.SSLContext] = {}
    for e in options["endpoints"]:
        name, url, ca = _endpoint(e, str(options["ca"]))
        if name in urls:
            raise ConfigError(f"beacons.service.endpoints: {name!r} twice")
        urls[name] = url
        if url.startswith("https:"):
            if ca not in contexts:
                contexts[ca] = tls_context(ca)
            tls[name] = contexts[ca]
    return urls, tls


def _endpoint(e: Any, default_ca: str) -> tuple[str, str, str]:
    """(name, url, ca) of one ``endpoints`` entry, or ConfigError naming what is wrong."""
    if not isinstance(e, dict) or set(e) - {"name", "url", "ca"} or not {"name", "url"} <= set(e):
        raise ConfigError(f"beacons.service.endpoints: {{name, url[, ca]}} entries, not {e!r}")
    url = str(e["url"])
    if urlsplit(url).scheme not in SCHEMES:
        raise ConfigError(f"beacons.service: {url!r} is not tcp://, http:// or https://")
    return str(e["name"]), url, str(e.get("ca", default_ca))
