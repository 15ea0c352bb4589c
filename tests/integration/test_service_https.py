"""The service beacon against a real TLS server on loopback: an https endpoint is up only
while it answers below 500 over a certificate that verifies against the configured CA for
the URL's address; down, with the reason, otherwise -- and up again when it is back."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from hactl.auth.store import server_pem
from hactl.minion.beacons import context
from hactl.minion.beacons.service import ServiceBeacon


async def _serve(pem: Path, status: int, port: int = 0) -> tuple[asyncio.Server, int]:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(pem)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(f"HTTP/1.0 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port, ssl=tls)
    return server, server.sockets[0].getsockname()[1]


async def _stop(server: asyncio.Server) -> None:
    server.close()
    await server.wait_closed()


def _write(tmp: Path, name: str, hosts: list[str]) -> tuple[Path, Path]:
    ca, pem = server_pem(hosts)
    (tmp / f"{name}-ca.crt").write_bytes(ca)
    (tmp / f"{name}.pem").write_bytes(pem)
    return tmp / f"{name}-ca.crt", tmp / f"{name}.pem"


def test_an_https_endpoint_goes_down_and_up_with_its_server(tmp_path: Path) -> None:
    """Up over a verified certificate; down (with the reason) when the server stops, when it
    answers 503, when its certificate is another CA's; up again when it is back."""

    async def main() -> None:
        ca, pem = _write(tmp_path, "site", ["127.0.0.1"])
        other_ca, other_pem = _write(tmp_path, "other", ["127.0.0.1"])
        server, port = await _serve(pem, 200)
        url = f"https://127.0.0.1:{port}/v3"
        options = {
            "ca": str(ca),
            "timeout": 2,
            "endpoints": [
                {"name": "keystone", "url": url},
                {"name": "untrusted", "url": url, "ca": str(other_ca)},
            ],
        }
        beacon = ServiceBeacon(context("ctl1", "service", options))

        async def keystone() -> tuple[bool, str]:
            snap = await beacon.poll()
            return bool(snap["keystone"]["up"]), str(snap["keystone"]["detail"])

        snap = await beacon.poll()
        assert snap["keystone"] == {"url": url, "up": True, "detail": "HTTP 200"}
        assert snap["untrusted"]["up"] is False
        assert "CERTIFICATE_VERIFY_FAILED" in str(snap["untrusted"]["detail"])
        await _stop(server)
        up, detail = await keystone()
        assert not up and "ConnectionRefused" in detail, detail
        server, _ = await _serve(pem, 503, port)
        assert await keystone() == (False, "HTTP 503")
        await _stop(server)
        server, _ = await _serve(other_pem, 200, port)  # a certificate the CA did not sign
        up, detail = await keystone()
        assert not up and "CERTIFICATE_VERIFY_FAILED" in detail, detail
        await _stop(server)
        server, _ = await _serve(pem, 200, port)
        assert await keystone() == (True, "HTTP 200")
        await _stop(server)

    asyncio.run(asyncio.wait_for(main(), 60))
