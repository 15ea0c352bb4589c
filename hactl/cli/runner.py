"""Run a command body: expected failures become one line and exit 2, Ctrl-C exits 130."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from hactl.config import Settings
from hactl.errors import HactlError

T = TypeVar("T")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
EXIT_INTERRUPTED = 130


def fail(exc: HactlError) -> NoReturn:
    """Print ``hactl: error: <one line>`` on stderr and exit with the error's code."""
    err_console.print(f"hactl: error: {exc}", markup=False)
    raise typer.Exit(exc.exit_code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh event loop with hactl's error and interrupt policy."""
    try:
        return asyncio.run(coro)
    except HactlError as exc:
        fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        # `hactl events tail | head`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


async def until_interrupted(work: Coroutine[Any, Any, None], grace: float = 3.0) -> int:
    """Run ``work`` (a reader that runs until stopped) until it ends or Ctrl-C / SIGTERM; the
    signal's number when one stopped it (0 when the work ended). The signal stops the work at
    its next await and lets its own clean-up run; should anything hang after that, the process
    exits 128 + the signal after ``grace`` seconds anyway (a CI run once saw a tail outlive
    SIGINT by 10 s)."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    hit: list[int] = []

    def on_signal(sig: int) -> None:
        if not hit:
            timer = threading.Timer(grace, os._exit, (128 + sig,))
            timer.daemon = True
            timer.start()
        hit.append(sig)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await task
    except asyncio.CancelledError:
        if not hit:
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return hit[0] if hit else 0


def settings_of(ctx: typer.Context) -> Settings:
    """The global options parsed by the root callback."""
    obj = ctx.obj
    assert isinstance(obj, Settings), "root callback did not run"
    return obj


def print_json(obj: Any) -> None:
    """One JSON document on stdout, one line."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":"), sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
