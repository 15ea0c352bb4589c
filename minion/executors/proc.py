"""Run a program from an argument list with a timeout; no shell, ever."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcResult:
    """Exit code and output of one program run."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stderr and stdout, trimmed: what a checker said."""
        return (self.stderr.strip() + "\n" + self.stdout.strip()).strip()


async def run_argv(
    argv: list[str], timeout: float, env: Mapping[str, str] | None = None
) -> ProcResult:
    """Run ``argv`` (``env`` added to ours); a missing program or a timeout -> 127 / 124."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, **env} if env else None,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return ProcResult(127, "", f"{argv[0]}: {exc.strerror}")
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return ProcResult(124, "", f"{argv[0]}: timed out after {timeout:g}s")
    return ProcResult(
        proc.returncode or 0, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    )
