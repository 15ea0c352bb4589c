"""Keystone on the shared lab, installed only by the shipped state keystone: a token issued on
any node validates on every node and through the VIP; `hactl keystone rotate` under a token
workload (keystoneauth1) costs no validation anywhere; a node's Keystone killed and started
again validates what the others issued, and they what it issues."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from hactl.data import states_dir
from hactl.lab import lab as L
from hactl.lab.config import KEYSTONE_PORT, paths, site_etc
from hactl.lab.workload import Workload, keystone_options
from hactl.minion.executors.keystone import present
from tests.lab.conftest import report
from tests.lab.helpers import hactl, wait_until

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)


def _url(host: str) -> str:
    return f"http://{host}:{KEYSTONE_PORT}/v3"


def _password(lab: L.Lab) -> str:
    return (site_etc(lab.dir) / "keystone-admin.pw").read_text().strip()


def _issue(url: str, password: str) -> str | None:
    """A project-scoped token from the Keystone at ``url`` (None when it does not answer 201)."""
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "admin", "domain": {"id": "default"}, "password": password}
                },
            },
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    req = urllib.request.Request(
        f"{url}/auth/tokens",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.headers.get("X-Subject-Token") if res.status == 201 else None
    except (urllib.error.URLError, OSError):
        return None


def _validates(url: str, token: str) -> int:
    """The status of GET /v3/auth/tokens for ``token`` at ``url`` (0: no answer)."""
    req = urllib.request.Request(
        f"{url}/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return int(res.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


def _everywhere(lab: L.Lab, tokens: dict[str, str]) -> dict[str, int]:
    """Each token validated on every node and through the internal VIP: {issuer>validator: status}."""
    where = {n: _url(lab.net.address(n)) for n in lab.net.nodes} | {"vip": _url(lab.net.vip(0))}
    return {
        f"{issuer}>{name}": _validates(url, token)
        for issuer, token in tokens.items()
        for name, url in where.items()
    }


def _issue_on_each(lab: L.Lab) -> dict[str, str]:
    password = _password(lab)
    out: dict[str, str] = {}
    for n in lab.net.nodes:
        url = _url(lab.net.address(n))

        def got(u: str = url, node: str = n) -> bool:
            token = _issue(u, password)
            if token:
                out[node] = token
            return bool(token)

        try:
            wait_until(got, 60, f"a token from {n}", step=0.5)
        except AssertionError as exc:  # what that Keystone said, for the diagnosis
            log = lab.node_dir(n) / "keystone.log"
            tail = log.read_text(errors="replace").splitlines()[-25:] if log.exists() else []
            raise AssertionError(f"{exc}; {n}'s keystone.log: " + " | ".join(tail)) from None
    return out


def _token_workload(lab: L.Lab) -> Workload:
    clients = Path(paths(lab.dir)["clients_conf"].replace("{id}", lab.net.nodes[0]))
    return Workload(clients, rpc=False, db=False, **keystone_options(lab))


def test_a_fernet_rotation_costs_no_validation_anywhere(lab: L.Lab) -> None:
    """Tokens issued on each node validate on every node and through the VIP; `hactl keystone
    rotate` under a token workload: 0 failed rounds; afterwards every node holds the rotated
    repository (the staged key promoted), old and new tokens validate everywhere."""
    keys = site_etc(lab.dir) / "keystone-fernet-keys"
    before = _issue_on_each(lab)
    first = _everywhere(lab, before)
    assert set(first.values()) == {200}, first
    with _token_workload(lab) as work:
        time.sleep(1.0)
        t0 = time.time()
        out = hactl(lab, "keystone", "rotate", str(states_dir()), "--keys", str(keys),
                    "--pillar", str(lab.dir / "lab-pillar.yaml"), "--json", timeout=120)  # fmt: skip
        took = time.time() - t0
        time.sleep(2.0)
    result = json.loads(out)
    assert result["rotated"] and result["pushed"], result
    f = work.figures(t0 - 0.5)["keystone"]
    report(
        f"keystone: fernet rotation (primary now {result['primary']}, {took:.1f} s) under "
        f"keystoneauth1: {f['rounds']} rounds, {f['failed']} failed, longest gap "
        f"{f['longest_gap']:.2f} s"
    )
    assert f["rounds"] >= 10 and f["failed"] == 0, f  # no issue, no validation failed
    repo = {n: present(lab.node_dir(n) / "keystone" / "fernet-keys") for n in lab.net.nodes}
    wanted = {int(i): k for i, k in (line.split() for line in keys.read_text().splitlines())}
    assert all(r == wanted for r in repo.values()), "every node holds the rotated repository"
    after = _everywhere(lab, {**{f"old-{k}": v for k, v in before.items()}, **_issue_on_each(lab)})
    assert set(after.values()) == {200}, after


def test_a_killed_keystone_started_again_validates_the_others_tokens(lab: L.Lab) -> None:
    """kill -9 of ctl2's Keystone (uwsgi's master; its workers follow) under the token workload,
    then `hactl apply` starts it again: what it issues validates everywhere and it validates
    what the others issue; every token issued meanwhile validated through the VIP, but for
    a request in flight on ctl2 at the kill (only the issues on ctl2 itself fail while it is
    down)."""
    node = "ctl2"
    pid = lab.daemon_pid(node, "keystone")
    assert pid, f"keystone runs on {node}"
    with _token_workload(lab) as work:
        time.sleep(1.0)
        t0 = time.time()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: lab.daemon_pid(node, "keystone") is None, 10, "keystone gone")
        time.sleep(1.5)  # its workers notice the master is gone (--no-orphans)
        hactl(lab, "apply", str(states_dir()), "--target", node, "--pillar",
              str(lab.dir / "lab-pillar.yaml"), timeout=180)  # fmt: skip
        wait_until(lambda: _issue(_url(lab.net.address(node)), _password(lab)), 60, "up", 0.2)
        up = time.time() - t0
        time.sleep(2.0)
    f = work.figures(t0 - 0.5)["keystone"]
    report(
        f"keystone: {node}'s Keystone kill -9, started by apply, issuing again {up:.1f} s "
        f"later; keystoneauth1 rounds {f['rounds']}, failed {f['failed']} "
        f"(by issuer {f['failed_by_issuer']}), longest gap {f['longest_gap']:.2f} s"
    )
    # a validation in flight on ctl2's Keystone at the kill dies with it (at most one per
    # client thread); every validation started after that went to a live Keystone
    late = [
        x for x in work.samples["keystone"]["samples"]
        if not x[3] and x[4].startswith("validate:") and x[0] > t0 + 1.0
    ]  # fmt: skip
    assert f["validation_failed"] <= len(lab.net.nodes) and not late, (f, late)
    status = _everywhere(lab, _issue_on_each(lab))
    assert set(status.values()) == {200}, status
