"""``ss`` (iproute2), bounded: the one way the minion lists and ends TCP sockets (the VIP
release and follow, vip_release.py and vip_follow.py)."""

from __future__ import annotations

import asyncio
import ipaddress

from hactl.log import get_logger

log = get_logger("hactl.minion")

TIMEOUT = 5.0


def host(address: str) -> str:
    """An address as ``ss`` filters take it (IPv6 bracketed); ValueError on anything else."""
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


async def run(argv: list[str], failed: str, **context: str) -> str | None:
    """``ss ARGS``' output, or None after logging ``failed`` (never raises)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except (OSError, TimeoutError) as exc:
        log.warning(failed, error=str(exc), **context)
        return None
    if proc.returncode != 0:
        log.warning(failed, error=err.decode(errors="replace")[-300:], **context)
        return None
    return out.decode(errors="replace")


def lines(output: str | None) -> int:
    """How many sockets an ``ss -H`` listed."""
    return sum(1 for line in (output or "").splitlines() if line.strip())
