"""The lab's masters: their rules folder (the shipped rules and the lab's probe), their
command line, and starting and stopping one (by pid)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hactl.data import reactors_dir, states_dir
from hactl.lab import daemons as d
from hactl.lab.bus import LAB_MASTERS
from hactl.lab.net import LabError

if TYPE_CHECKING:
    from hactl.lab.model import Lab

HACTL = str(Path(sys.executable).parent / "hactl")


#: a lab-only site rule: a synthetic "Synced" beacon event -> one real HAProxy call on every
#: node; the lab tests count its done events to prove the reactor acts on each event exactly
#: once across master and NATS failures (the reconciler owns HAProxy states, so no shipped
#: rule is an edge on Synced any more)
LAB_RULES = """# Lab only (hactl/lab/lab.py): the exactly-once probe of the lab tests.
- name: lab-synced-probe
  doc: A galera report turning Synced (the lab tests send synthetic ones) -> make that node's
    galera server ready on every HAProxy (the state the reconciler wants anyway).
  on: hactl/beacon/*/galera
  when: event.changed.synced.to == true
  key: event.node
  do:
    - haproxy.set_state: {node: all, backend: galera, server: "{{ event.node }}", state: ready}
"""


#: lab-sized timings of the shipped rules (the lab's 10 s lost_after is the same idea): the
#: whole-cluster Galera recovery may fire again 15 s after it fired, not 60 s, so a test that
#: crashes Galera twice in a minute measures the recovery, not the cooldown; a broker that
#: pause_minority paused whose beacon cannot tell whether its cluster is reachable is
#: restarted 30 s after it stopped answering, not 60 s (the minions' ``resume_grace`` is the
#: lab's 5 s, hactl/lab/config.py: a resume RabbitMQ can finish ends 2-3 s after the heal)
LAB_TIMINGS = {
    "galera.yaml": (
        (
            "  key: \"'galera'\"\n  debounce: 3s\n  cooldown: 60s\n",
            "  key: \"'galera'\"\n  debounce: 3s\n  cooldown: 15s\n",
        ),
    ),
    "rabbitmq.yaml": (
        (
            "is not false and event.ts - event.items.local.down_since > 60\n",
            "is not false and event.ts - event.items.local.down_since > 30\n",
        ),
    ),
}


def rules_dir(lab: Lab) -> Path:
    """The lab master's rules: the shipped ones and the lab's probe (what a site does with
    ``hactl init``: its own copy)."""
    folder = lab.dir / "reactors"
    if not folder.is_dir():
        folder.mkdir()
        for src in sorted(reactors_dir().glob("*.yaml")):
            text = src.read_text()
            for shipped, lab_sized in LAB_TIMINGS.get(src.name, ()):
                if shipped not in text:  # the shipped rule changed: say so, never run unsized
                    raise LabError(f"{src.name}: lab timing {shipped.strip()!r} not found")
                text = text.replace(shipped, lab_sized, 1)
            (folder / src.name).write_text(text)
        (folder / "zz-lab.yaml").write_text(LAB_RULES)
    return folder


def metrics_port(lab: Lab, name: str) -> int:
    """A lab master's Prometheus endpoint (loopback of the root namespace): one block of
    ports per lab subnet, so labs on different subnets (tests, benchmarks) run side by side."""
    block = int(lab.net.subnet.rsplit(".", 1)[1]) % 64
    return 19464 + 8 * block + LAB_MASTERS.index(name)


def master_argv(lab: Lab, *extra: str, name: str = "master") -> list[str]:
    """A lab master: its own data dir (its lock and leader-key record: a restarted master
    takes its own key back, decision 59), the lab's rules, fast redelivery and loss verdicts,
    R3 buckets, the state tree and the lab's pillar (for state.apply), its metrics on
    loopback."""
    return [
        HACTL,
        "--nats",
        lab.nats_url,
        "--data-dir",
        str(lab.dir / "masters" / name),
        "--log-format",
        "json",
        "master",
        "--replicas",
        str(min(3, len(lab.net.nodes))),
        "--reactors",
        str(rules_dir(lab)),
        "--lost-after",
        "10s",
        "--ack-wait",
        "5s",
        "--states",
        str(states_dir()),
        "--pillar",
        str(lab.dir / "lab-pillar.yaml"),
        "--metrics",
        f"127.0.0.1:{metrics_port(lab, name)}",
        *extra,
    ]


def _log_tail(log: Path, since: int, lines: int) -> str:
    """The last ``lines`` lines a master wrote to ``log`` after offset ``since``."""
    return "\n".join(d.read_log(log)[since:].splitlines()[-lines:])


def start_master(lab: Lab, name: str, ready_within: float = 30.0) -> int:
    """Another master (root namespace), recorded as ``name`` so ``down`` ends it too; ``name``
    is one of :data:`LAB_MASTERS` (its identity). LabError when its reactor has not started
    within ``ready_within`` seconds (it keeps running)."""
    env = lab.cli_env(name)
    argv = master_argv(lab, name=name)
    log = lab.dir / f"{name}.log"
    mark = len(d.read_log(log))  # a restarted master appends to its log
    lab.pids[name] = d.spawn(argv, log, env)
    lab.save()
    try:
        d.wait_for(lambda: "reactor_started" in d.read_log(log)[mark:], ready_within, name)
    except LabError as exc:  # say what it was doing (or why it ended): its last log lines
        alive = "running" if d.alive(lab.pids[name]) else "exited"
        tail = _log_tail(log, mark, 30)
        raise LabError(f"{exc.detail} ({alive}); its log since the start ends:\n{tail}") from None
    return lab.pids[name]


def stop_master(lab: Lab, name: str = "master", sig: int = signal.SIGTERM) -> None:
    """Stop a lab master (by its pid) and wait until it is gone."""
    pid = lab.pids.get(name)
    if pid and d.alive(pid):
        os.kill(pid, sig)
        try:  # longer than the master's own bound (STOP_DEADLINE_S): its stacks reach the log
            d.wait_for(lambda: not d.alive(pid), 40, f"{name} stopped")
        except LabError as exc:  # say what it was doing: its last log lines
            tail = _log_tail(lab.dir / f"{name}.log", 0, 25)
            raise LabError(f"{exc.detail}; its log ends:\n{tail}") from None
