"""E2E 1: kill -9 HAProxy on the VIP holder -> VIP moves -> the reconciler drains the lost
node's API servers (its keepalived is unhealthy) until it is healthy again."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from hactl.data import states_dir
from hactl.lab import lab as L
from tests.lab.conftest import report
from tests.lab.helpers import HttpLoop, recent_decisions, server_status, wait_until

ROOT_STATES = str(states_dir())


def _servers_of(lab: L.Lab, on: str, server: str) -> dict[str, str]:
    return {k: v for k, v in server_status(lab, on).items() if k.endswith("/" + server)}


def _out(states: dict[str, str]) -> bool:
    """The node's API servers are drained (their stand-ins are healthy: DRAIN exactly); its
    Galera and RabbitMQ servers follow their own facts (healthy: UP) -- the desired state
    (master/reactor/desired.py), where the old vip-moved rule drained every backend."""
    api = {k: v for k, v in states.items() if k.startswith("be_")}
    own = {k: v for k, v in states.items() if not k.startswith("be_")}
    return all(v == "DRAIN" for v in api.values()) and all(v == "UP" for v in own.values())


def _or_explain(lab: L.Lab, wait: object) -> float:
    try:
        return wait()  # type: ignore[operator, no-any-return]
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{recent_decisions(lab, '40s')}") from None


def test_haproxy_kill_moves_vip_and_drains(lab: L.Lab) -> None:
    """VIP on another node, the dead holder's servers drained there, clients see a short gap."""
    vip = lab.net.vip(0)
    wait_until(lambda: L.holders(lab)[vip], 20, "a VIP holder")
    holder = L.holders(lab)[vip][0]
    pid = lab.daemon_pid(holder, "haproxy")
    assert pid, f"haproxy runs on {holder}"
    with HttpLoop(vip) as client:
        time.sleep(1.0)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        t_vip = wait_until(lambda: (h := L.holders(lab)[vip]) and h != [holder], 20, "VIP moved")
        new = L.holders(lab)[vip][0]
        t_drain = _or_explain(
            lab,
            lambda: wait_until(
                lambda: (st := _servers_of(lab, new, holder)) and _out(st),
                20,
                f"{holder}'s API servers drained on {new}",
            ),
        )
        # the external VIP (eth1, the second bridge) left the dead holder too, and answers
        ext = lab.net.vip(1)
        t_ext = wait_until(
            lambda: (h := L.holders(lab)[ext]) and holder not in h, 20, "external VIP moved"
        )
        ext_holder = L.holders(lab)[ext][0]
        with HttpLoop(ext) as ext_client:
            wait_until(
                lambda: ext_client.samples and ext_client.samples[-1][1],
                10,
                f"a GET through the external VIP {ext}",
            )
        time.sleep(1.5)
    drained = _servers_of(lab, new, holder)
    assert len(drained) >= 14 and _out(drained)
    report(
        f"e2e1 haproxy kill -9 on {holder}: VIP on {new} after {t_vip - t0:.2f} s; "
        f"{holder}'s {len([k for k in drained if k.startswith('be_')])} API servers drained on {new} "
        f"after {t_drain - t0:.2f} s; "
        f"client GET every 20 ms: {client.failures()} failed, longest gap "
        f"{client.longest_gap():.2f} s; external VIP {ext} (eth1) on {ext_holder} after "
        f"{t_ext - t0:.2f} s, answering"
    )

    # recovery: apply restarts HAProxy there; keepalived is healthy again -> servers ready
    t1 = time.monotonic()
    res = subprocess.run(
        [
            L.HACTL,
            "--nats",
            lab.nats_url,
            "apply",
            ROOT_STATES,
            "--target",
            holder,
            "--pillar",
            str(lab.dir / "lab-pillar.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=lab.cli_env(),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    t_ready = wait_until(
        lambda: all(v == "UP" for n in lab.net.nodes for v in _servers_of(lab, n, holder).values()),
        30,
        f"{holder} ready everywhere",
    )
    report(
        f"e2e1 recovery: hactl apply restarted HAProxy on {holder}; its servers UP on every "
        f"HAProxy after {t_ready - t1:.2f} s; VIP now on {', '.join(L.holders(lab)[vip])}"
    )
