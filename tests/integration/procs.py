"""Child processes for CLI tests: started by the test, read line by line, always ended by pid."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO

from tests.integration.conftest import HACTL

#: credentials of the session's server (set by the ``nats`` fixture): a child given
#: ``--nats`` connects with them unless the test passes its own environment
SESSION_ENV: dict[str, str] = {}


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without hactl settings that would leak in from the shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HACTL_", "NATS_"))}
    env.update(extra)
    return env


def _env_for(args: list[str]) -> dict[str, str]:
    return clean_env(**SESSION_ENV) if "--nats" in args else clean_env()


class Proc:
    """A running ``hactl`` child with its stdout and stderr read into line queues."""

    def __init__(
        self, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.args = [HACTL, *args]
        self.popen = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or _env_for(args),
            cwd=cwd,
            text=True,
        )
        self.out: queue.Queue[str] = queue.Queue()
        self.err_lines: list[str] = []
        assert self.popen.stdout is not None
        assert self.popen.stderr is not None
        self._threads = [
            threading.Thread(
                target=self._pump, args=(self.popen.stdout, self.out.put), daemon=True
            ),
            threading.Thread(
                target=self._pump, args=(self.popen.stderr, self.err_lines.append), daemon=True
            ),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: IO[str], put: object) -> None:
        for line in stream:
            put(line)  # type: ignore[operator]

    @property
    def pid(self) -> int:
        """The child's pid."""
        return self.popen.pid

    def line(self, timeout: float) -> str | None:
        """The next stdout line, or None if none came within ``timeout``."""
        try:
            return self.out.get(timeout=timeout)
        except queue.Empty:
            return None

    def alive(self) -> bool:
        """True while the child runs."""
        return self.popen.poll() is None

    def stderr_text(self) -> str:
        """Everything the child wrote on stderr so far."""
        return "".join(self.err_lines)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to this child only."""
        if self.alive():
            os.kill(self.popen.pid, sig)

    def wait(self, timeout: float) -> int:
        """Wait for exit; returns the exit code."""
        code = self.popen.wait(timeout)
        for t in self._threads:
            t.join(2.0)
        return code

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; safe to call twice."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def run_cli(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run one ``hactl`` command to completion (the timeout is a hang guard)."""
    return subprocess.run(
        [HACTL, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or _env_for(args),
        stdin=subprocess.DEVNULL,
        check=False,
    )
