"""nats-py's TLS close, made immediate: applied once per process by ``Bus.connect``."""

from __future__ import annotations

from typing import Any

from nats.aio.transport import TcpTransport


def abort_on_close() -> None:
    """Make nats-py drop a TLS connection at once when it closes it.

    nats-py closes the old transport and awaits ``wait_closed()`` before it reconnects; on TLS
    that sends close_notify and waits for the peer up to asyncio's ssl_shutdown_timeout (30 s).
    Measured in the lab: a master whose server was silently partitioned declared it dead after
    2 s (pings) and then sat 30 s more in that wait, blind. hactl has flushed (``drain``) or
    given up on a connection by the time it closes it, so aborting loses nothing."""
    if getattr(TcpTransport.close, "_hactl_abort", False):
        return
    original = TcpTransport.close

    def close(self: TcpTransport) -> Any:
        writer = getattr(self, "_io_writer", None)
        if writer is not None:
            writer.transport.abort()
        return original(self)  # type: ignore[no-untyped-call]  # nats-py is untyped

    close._hactl_abort = True  # type: ignore[attr-defined]  # marks the patch as applied
    TcpTransport.close = close  # type: ignore[method-assign]  # nats-py has no hook for this
