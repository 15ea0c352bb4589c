"""Silence is not evidence (issue 26): the VIP holder cut off the network (its carrier up)
for longer than every loss verdict, then healed, with the master restarted right after the
heal. No API server of a node that stayed healthy may be taken out at any time, and whatever
hactl took out converges back after the heal, each correction in the trail.

One run in CI (30 s, master restarted); ``benchmarks/silence.py`` repeats 30 s and 60 s, with
and without the restart. Figures are reported, not asserted (a shared, noisy machine).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

from hactl.lab import bus as lab_bus
from hactl.lab import daemons as d
from hactl.lab import lab as L
from hactl.lab.baseline import deviations
from hactl.lab.workload import Workload, prepare
from tests.lab.conftest import report
from tests.lab.helpers import (
    DrainWatch,
    clients_line,
    minion_log,
    never_wrong,
    server_status,
    stored_events,
    wait_until,
)

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)


def _all_up(lab: L.Lab, late: dict[str, tuple[float, str]]) -> bool:
    """Every server UP on every HAProxy (and every HAProxy answering); ``late`` keeps, per
    ``haproxy:backend/server``, when it was last seen not UP and how (what held the heal up)."""
    ok, now = True, time.monotonic()
    for h in lab.net.nodes:
        status = server_status(lab, h)
        if not status:
            late[f"{h}:HAProxy"] = (now, "not answering")
            ok = False
        for server, v in status.items():
            if v != "UP":
                late[f"{h}:{server}"] = (now, v)
                ok = False
    return ok


def leaders_on(lab: L.Lab, holder: str, asked: str) -> list[str]:
    """The workload's quorum queues (its RPC topic queues and the callers' reply queues) whose
    leader is ``holder``'s broker, as ``asked``'s broker lists them (rabbitmqctl in its
    namespace); ``["?"]`` when it could not say."""
    try:
        res = d.rabbitmqctl(
            lab.dir, lab.net, asked, "-q", "list_queues", "name", "leader", "--formatter", "json",
            timeout=30,
        )  # fmt: skip
        rows = json.loads(res.stdout) if res.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        rows = None
    if not isinstance(rows, list):
        return ["?"]
    return sorted(
        str(r.get("name"))
        for r in rows
        if str(r.get("leader")) == f"rabbit@{holder}"
        and ("hactl-workload" in str(r.get("name")) or str(r.get("name")).startswith("reply_"))
    )


def holder_silence(
    lab: L.Lab, seconds: float, restart_master: bool, leaders: bool = False
) -> dict[str, Any]:
    """Cut the internal VIP's holder off for ``seconds`` (link off the bridge, carrier up),
    heal it, optionally restart the master at once; the figures: what was taken out of the
    healthy nodes, seconds from the heal until every server is UP everywhere and until the
    whole baseline holds, and the reconciler's corrections after the heal. ``leaders``: also
    which of the workload's quorum queues the holder's broker led at the cut (a benchmark's
    question: rabbitmqctl takes seconds)."""
    vip = lab.net.vip(0)
    wait_until(lambda: len(L.holders(lab)[vip]) == 1, 20, "one VIP holder")
    holder = L.holders(lab)[vip][0]
    healthy = tuple(n for n in lab.net.nodes if n != holder)
    since = datetime.now(UTC)
    # OpenStack's own clients through the VIP (oslo.messaging RPC, an oslo.db writer) with
    # hactl's rendered settings, run as a service on a healthy controller (in its namespace):
    # every oslo.db client of a cloud runs on a controller
    client_node = healthy[-1]  # not the VIP's next holder: its minion hears the move by GARP
    configs = prepare(lab, client_node)
    with (
        Workload(*configs, netns=lab.net.ns(client_node)) as work,
        DrainWatch(lab, healthy) as watch,
    ):
        time.sleep(2.0)
        led = leaders_on(lab, holder, healthy[0]) if leaders else None
        wall_cut = time.time()
        t_cut = time.monotonic()
        lab_bus.set_link(lab, holder, attached=False)
        try:
            time.sleep(seconds)
        finally:
            lab_bus.set_link(lab, holder, attached=True)
        t_heal = time.monotonic()
        healed_at = datetime.now(UTC)
        master_s = None
        if restart_master:
            L.stop_master(lab)
            # right after a heal JetStream's raft groups are still electing: the master waits
            # for its streams (how long is one of the figures)
            L.start_master(lab, "master", ready_within=120)
            master_s = time.monotonic() - t_heal
        late: dict[str, tuple[float, str]] = {}
        up = wait_until(lambda: _all_up(lab, late), 240, "every server UP after the heal", 0.2)
        whole = wait_until(lambda: not deviations(lab), 240, "the baseline after the heal", 0.5)
        time.sleep(3.0)  # anything taken out late is still seen
    clients = work.figures(wall_cut - 0.5)
    rpc = clients["rpc"]
    if rpc["executed_twice"] or rpc["longest_gap"] > 5:  # the clients' own timed account
        clients["log"] = [
            x[:240]
            for x in work.read_log().splitlines()
            if "AMQP" in x or "econnect" in x or "uplicate" in x
        ][-40:]
    moved = [e for e in minion_log(lab, client_node, "vip_clients_moved", since) if e["vip"] == vip]
    trail = asyncio.run(stored_events(lab, "hactl/reactor/reconcile/done", since))
    after = [e for e in trail if e.ts >= healed_at.timestamp()]
    return {
        "holder": holder,
        "seconds": seconds,
        "restart_master": restart_master,
        "master_ready_s": master_s,
        "healthy_taken_out": {k: round(t - t_cut, 1) for k, t in sorted(watch.seen.items())},
        "samples": watch.samples,
        "all_up_after_heal_s": round(up - t_heal, 1),
        # the servers UP last, with how each was last seen (what a slow heal waited for)
        "up_last": [
            f"{k} {v} until {t - t_heal:.1f} s"
            for k, (t, v) in sorted(late.items(), key=lambda kv: -kv[1][0])[:4]
        ],
        "baseline_after_heal_s": round(whole - t_heal, 1),
        "corrections_during_cut": [
            f"{e.data.get('key')}->{e.data.get('to')}"
            for e in trail
            if e.ts < healed_at.timestamp()
        ],
        "corrections_after_heal": [f"{e.data.get('key')}->{e.data.get('to')}" for e in after],
        "clients": clients,
        "client_node": client_node,
        "leaders_on_holder": led,
        # the client node's minion ending its connections to the VIP when it moved
        "clients_moved": [f"{e['why']}: {e['connections']} ended {e.get('ports')}" for e in moved],
        "clients_ended_at_first_move": moved[0]["connections"] if moved else None,
    }


def line(f: dict[str, Any]) -> str:
    """One report line of a run's figures."""
    restart = (
        f", master restarted (ready {f['master_ready_s']:.1f} s)" if f["restart_master"] else ""
    )
    return (
        f"silence: VIP holder {f['holder']} cut {f['seconds']:g} s{restart}: "
        f"{clients_line(f['clients'])} (on {f['client_node']}"
        + (
            f"; queues led by the holder at the cut: {', '.join(f['leaders_on_holder']) or 'none'}"
            if f.get("leaders_on_holder") is not None
            else ""
        )
        + "; its minion moved them: "
        f"{'; '.join(f['clients_moved']) or 'never'}); "
        f"{len(f['healthy_taken_out'])} API server(s) of healthy nodes taken out "
        f"({f['samples']} samples); every server UP {f['all_up_after_heal_s']:.1f} s "
        f"(last: {'; '.join(f['up_last'][:2]) or 'none down'}) and the "
        f"baseline {f['baseline_after_heal_s']:.1f} s after the heal; corrections during the "
        f"cut {len(f['corrections_during_cut'])}, after it {len(f['corrections_after_heal'])}: "
        + (", ".join(f["corrections_after_heal"][:8]) or "none")
    )


def test_the_vip_holder_cut_30s_then_the_master_restarted_drains_nothing_healthy(
    lab: L.Lab,
) -> None:
    """The VIP holder silent for 30 s (carrier up), healed, the master restarted at once: no
    API server of the two healthy nodes is taken out on any HAProxy at any time, and the lab
    returns to its whole healthy baseline."""
    figures = holder_silence(lab, 30.0, restart_master=True)
    report(line(figures))
    assert figures["healthy_taken_out"] == {}, figures
    assert figures["samples"] > 50, figures  # the watch looked throughout
    # the oslo.db writer's query in flight to the cut holder: ended by the client node's minion
    # when the VIP moved (decision 46), not left to wait for the heal
    assert figures["clients_ended_at_first_move"], figures["clients_moved"]
    # the holder's broker is cut with it: AMQP delivers at least once, and a call in flight at
    # the cut may run twice (CI and a fresh clone each saw 1 in ~2,500-3,000); reported with
    # its deliveries and runs, never a row lost
    never_wrong(figures["clients"], cut=True)
