"""The demo tour: break the lab's real daemons one way after another and show hactl repair them.

``python -m hactl.lab.tour --dir /tmp/hactl-lab`` (the lab must be up). Each step prints what
was broken, every reactor decision that followed (from the bus), and the measured time until
the repaired state was observed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from hactl.bus import Bus
from hactl.data import states_dir
from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.wire.envelope import Event
from hactl.wire.tags import parse_tag

BOLD, DIM, END = "\033[1m", "\033[2m", "\033[0m"


def _status(lab: L.Lab, node: str) -> dict[str, str]:
    return d.haproxy_servers(lab.node_dir(node) / "run/haproxy.sock")


async def _until(pred: Callable[[], object], timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await asyncio.to_thread(pred):
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    return None


def _secs(value: float | None) -> str:
    """``1.23 s``, or what a wait that ran out means."""
    return "(not within the wait)" if value is None else f"{value:.2f} s"


def _say(text: str) -> None:
    print(text, flush=True)


async def tour(lab: L.Lab) -> None:
    """The four scenes."""
    bus = await Bus.connect(
        lab.nats_url, lab.client_auth(), name="hactl-tour", timeout=5, reconnect=True
    )

    async def on_decision(e: Event) -> None:
        tag = parse_tag(e.tag)
        rule, what = tag.name, tag.what
        extra = e.data.get("reason") or e.data.get("error") or ""
        _say(f"    {DIM}reactor: {rule} {what} {extra}{END}")

    async def on_galera_step(e: Event) -> None:
        _say(
            f"    {DIM}galera: {e.tag.split('/')[-1]} {e.data.get('reason') or e.data.get('node') or ''}{END}"
        )

    await bus.subscribe("hactl/reactor/*/fired", on_decision)
    await bus.subscribe("hactl/reactor/*/suppressed", on_decision)
    await bus.subscribe("hactl/reactor/*/failed", on_decision)
    await bus.subscribe("hactl/event/galera/*", on_galera_step)
    vip = lab.net.vip(0)
    try:
        holder = L.holders(lab)[vip][0]
        _say(f"\n{BOLD}1. kill -9 HAProxy on the VIP holder {holder}{END}")
        os.kill(lab.daemon_pid(holder, "haproxy") or 0, signal.SIGKILL)
        moved = await _until(lambda: L.holders(lab)[vip] not in ([holder], []), 20)
        new = L.holders(lab)[vip][0]
        # the desired state: the dead holder's API servers drained (its keepalived is
        # unhealthy); its Galera and RabbitMQ servers follow their own facts and stay UP
        drained = await _until(
            lambda: (
                {
                    v
                    for k, v in _status(lab, new).items()
                    if k.startswith("be_") and k.endswith("/" + holder)
                }
                == {"DRAIN"}
            ),
            20,
        )
        _say(
            f"  VIP {vip} moved to {new} after {_secs(moved)}; {holder}'s API servers drained on"
            f" {new} after {_secs(drained)} (its Galera and RabbitMQ servers stay UP: healthy)"
        )
        await asyncio.to_thread(
            subprocess.run,
            [
                L.HACTL,
                "--nats",
                lab.nats_url,
                "-q",
                "apply",
                str(states_dir()),
                "--target",
                holder,
                "--pillar",
                str(lab.dir / "lab-pillar.yaml"),
            ],
            capture_output=True,
            timeout=120,
            env=lab.cli_env(),
        )
        back = await _until(
            lambda: all(
                v == "UP"
                for n in lab.net.nodes
                for k, v in _status(lab, n).items()
                if k.endswith("/" + holder)
            ),
            30,
        )
        _say(
            f"  hactl apply restarted HAProxy on {holder}: its servers UP everywhere after {_secs(back)}"
        )

        _say(f"\n{BOLD}2. kill -9 mariadbd on ctl2{END}")
        os.kill(lab.daemon_pid("ctl2", "galera") or 0, signal.SIGKILL)
        out = await _until(
            lambda: {_status(lab, n).get("galera/ctl2") for n in lab.net.nodes} == {"MAINT"}, 20
        )
        synced = await _until(
            lambda: (
                d.galera_state(lab.node_dir("ctl2") / "mysql/mysqld.sock") == ("Primary", "Synced")
            ),
            90,
        )
        ready = await _until(
            lambda: {_status(lab, n).get("galera/ctl2") for n in lab.net.nodes} == {"UP"}, 30
        )
        _say(
            f"  out of every galera backend after {_secs(out)}; rejoined (IST) and Synced after {_secs(synced)}; back in after {_secs(ready)} more"
        )

        _say(f"\n{BOLD}3. kill -9 all three mariadbd{END}")
        t0 = time.monotonic()
        for n in lab.net.nodes:
            os.kill(lab.daemon_pid(n, "galera") or 0, signal.SIGKILL)
        all_synced = await _until(
            lambda: all(
                d.galera_state(lab.node_dir(n) / "mysql/mysqld.sock") == ("Primary", "Synced")
                for n in lab.net.nodes
            ),
            180,
        )
        _say(
            f"  Primary with 3 Synced nodes {_secs(all_synced)} after the crash ({time.monotonic() - t0:.1f} s)"
        )

        _say(f"\n{BOLD}4. kill -9 RabbitMQ on ctl3{END}")
        os.kill(lab.daemon_pid("ctl3", "rabbitmq") or 0, signal.SIGKILL)
        maint = await _until(
            lambda: {_status(lab, n).get("rabbitmq/ctl3") for n in lab.net.nodes} == {"MAINT"}, 20
        )
        _say(
            f"  maint + client sessions cut on every HAProxy after {_secs(maint)} (health checks alone: 2 s here, 15 s with inter 5s fall 3)"
        )
        await asyncio.sleep(1.0)
    finally:
        await bus.close()


def main() -> None:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", type=Path, default=Path("/tmp/hactl-lab"))  # noqa: S108 - a root-only lab folder
    args = p.parse_args()
    asyncio.run(tour(L.Lab.load(args.dir)))


if __name__ == "__main__":
    main()
