"""Real daemons for integration tests: HTTP backends and HAProxy, on loopback, free ports."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from hactl.minion.admin_socket import admin_command
from hactl.minion.beacons.haproxy import parse_show_stat


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: object) -> None:
        return


class Backend:
    """A tiny HTTP server on 127.0.0.1 with a port chosen by the kernel."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop answering (connections are then refused)."""
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def haproxy_config(sock: Path, front: int, backends: dict[str, int]) -> str:
    """A small HAProxy config with an admin socket and HTTP-checked servers."""
    servers = "\n".join(
        f"  server {name} 127.0.0.1:{port} check inter 100ms fall 2 rise 2"
        for name, port in backends.items()
    )
    return f"""global
  stats socket {sock} mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend fe_api
  bind 127.0.0.1:{front}
  default_backend be_api
backend be_api
  balance roundrobin
  option httpchk GET /
{servers}
"""


class Haproxy:
    """haproxy -db (foreground) as our child; stopped by its pid."""

    def __init__(self, cfg: Path) -> None:
        self.proc = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def stop(self) -> None:
        """SIGTERM then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()


async def wait_servers(sock: Path, want: dict[str, str], timeout: float = 15.0) -> None:
    """Wait until the admin socket reports each ``backend/server`` in the wanted status."""
    deadline = time.monotonic() + timeout
    last = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, TimeoutError):
            items = parse_show_stat(await admin_command(str(sock), "show stat"))
            last = {k: items[k]["status"] for k in want if k in items}
            if last == want:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"haproxy servers never reached {want}; last {last}")
