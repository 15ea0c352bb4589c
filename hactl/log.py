"""structlog, configured once: JSON lines for daemons, a console renderer on a TTY."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from hactl.config import LogFormat

_configured = False


def configure(fmt: LogFormat = "auto", verbosity: int = 0, *, stream: Any = None) -> None:
    """Set up logging for the process. ``verbosity`` 0 = info, 1+ = debug; -1 = warnings only."""
    global _configured  # noqa: PLW0603 - logging is process-global by nature
    out: Any = stream or _Stderr()  # a TextIO in all but name (write, flush, isatty)
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    # Libraries that use the standard logging module (nats-py) go to the same stream.
    logging.basicConfig(
        stream=out,
        level=max(level, logging.WARNING),
        force=True,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("asyncio").addFilter(_ssl_eof_noise)
    _configured = True


class _Stderr:
    """``sys.stderr`` looked up at each write, not when logging was configured: whoever swaps
    it later (a test runner capturing a command's output) never leaves loggers holding a
    closed stream."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _ssl_eof_noise(record: logging.LogRecord) -> bool:
    """asyncio's SSL transport warns on every peer close (a CPython quirk, not a problem)."""
    return "eof_received()" not in record.getMessage()


def get_logger(name: str) -> Any:
    """A bound logger; configures a sensible default if nobody did yet."""
    if not _configured:
        configure()
    return structlog.get_logger(name)
