"""Stand-ins for the OpenStack APIs in the lab: one process answers HTTP on many ports.

``python -m hactl.lab.standin --bind 10.99.0.11 --name ctl1 5000 35357 ...`` answers every
GET with ``200 <service port> on <name>`` (so a client through the VIP sees which node served
it) and every port also accepts plain TCP (for the ``mode tcp`` frontends).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal


async def serve(bind: str, name: str, ports: list[int]) -> None:
    """Listen on every port until SIGTERM."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("sockname")[1]
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            body = f"{port} on {name}\n".encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    servers = [await asyncio.start_server(handle, bind, p, reuse_address=True) for p in ports]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


def main() -> None:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bind", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("ports", nargs="+", type=int)
    a = p.parse_args()
    asyncio.run(serve(a.bind, a.name, a.ports))


if __name__ == "__main__":
    main()
