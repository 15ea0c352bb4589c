"""HAProxy's admin (stats) socket: one client for the beacon, the executors and the lab.

One command per connection (HAProxy's non-interactive mode): the command line, then the whole
answer until HAProxy closes. Every call is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import socket


async def admin_command(path: str, command: str, timeout: float = 2.0) -> str:
    """Send one command on the admin socket and return the whole answer."""

    async def talk() -> str:
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            data = await reader.read(-1)
        finally:
            writer.close()
        return data.decode("utf-8", "replace")

    return await asyncio.wait_for(talk(), timeout)


def admin_command_blocking(path: str, command: str, timeout: float = 2.0) -> str:
    """The same, blocking (the lab's probes, which run outside an event loop)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        return b"".join(iter(lambda: s.recv(65536), b"")).decode("utf-8", "replace")
