"""Webhook notifications from a real master to a real local HTTP receiver: the body is the
event, signed with HMAC-SHA256; a receiver that fails is retried; a dead one costs nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.integration.daemons import free_port
from tests.integration.procs import Proc, run_cli


class Receiver:
    """Records every POST; answers 500 to the first ``fail`` ones."""

    def __init__(self, fail: int = 0) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.fail = fail
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append((dict(self.headers), body))
                code = 500 if len(outer.posts) <= outer.fail else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _until(ok: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _alertmanager_master(tmp_path: Path, rx: Receiver, extra: str = "") -> tuple[list[str], Proc]:
    """A master whose one sink is an Alertmanager at ``rx`` (``extra``: more sink keys),
    answering pings."""
    cfg = tmp_path / "master.yaml"
    cfg.write_text(
        "notify:\n"
        f"  - {{url: 'http://127.0.0.1:{rx.port}/api/v2/alerts', kind: alertmanager,"
        f" match: ['hactl/event/alert/**']{extra}}}\n"
    )
    base = ["--data-dir", str(tmp_path / "d"), "--log-format", "json"]
    master = Proc([*base, "master", "--port", "-1", "--config", str(cfg)])
    ready = run_cli([*base, "ping", "--wait", "20"])
    if ready.returncode != 0:
        master.stop()
        raise AssertionError(master.stderr_text())
    return base, master


def test_alerts_reach_a_signed_webhook_with_retries(tmp_path: Path) -> None:
    """An alert fired on the bus arrives at the receiver as the signed event JSON, after the
    receiver's first two 500s (retries); the master serves on while a second sink is dead."""
    rx = Receiver(fail=2)
    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret-for-the-hook\n")
    dead = free_port()
    cfg = tmp_path / "master.yaml"
    cfg.write_text(
        "notify:\n"
        f"  - {{url: 'http://127.0.0.1:{rx.port}/hook', match: ['hactl/event/alert/**'],"
        f" secret_file: {secret}}}\n"
        f"  - {{url: 'http://127.0.0.1:{dead}/nobody', match: ['hactl/event/alert/**']}}\n"
    )
    base = ["--data-dir", str(tmp_path / "d"), "--log-format", "json"]
    master = Proc([*base, "master", "--port", "-1", "--config", str(cfg)])
    try:
        assert run_cli([*base, "ping", "--wait", "20"]).returncode == 0, master.stderr_text()
        fired = run_cli([*base, "fire", "hactl/event/alert/disk-full", "node=ctl2", "--json"])
        assert fired.returncode == 0, fired.stderr
        event_id = json.loads(fired.stdout)["id"]
        _until(lambda: len(rx.posts) >= 3, "three attempts (two 500s, then 200)")
        headers, body = rx.posts[-1]
        sent = json.loads(body)
        assert sent["tag"] == "hactl/event/alert/disk-full" and sent["id"] == event_id
        assert sent["data"]["node"] == "ctl2"
        want = "sha256=" + hmac.new(b"s3cret-for-the-hook", body, hashlib.sha256).hexdigest()
        assert headers["X-Hactl-Signature"] == want and headers["X-Hactl-Event"] == event_id
        stats = json.loads(run_cli([*base, "stats", "--json"]).stdout)
        assert stats["notify"]["sent"] == 1 and stats["notify"]["retries"] >= 2
        assert run_cli([*base, "ping"]).returncode == 0  # the dead sink slowed nothing
    finally:
        master.stop()
        rx.close()
    assert master.wait(15) == 0


def test_alertmanager_gets_alerts_and_their_resolution(tmp_path: Path) -> None:
    """A sink of kind alertmanager receives Alertmanager's API body (a list of alerts with
    labels, startsAt and an endsAt ahead) for an alert, and the same labels ended when it is
    resolved."""
    rx = Receiver()
    base, master = _alertmanager_master(tmp_path, rx)
    try:
        run_cli([*base, "fire", "hactl/event/alert/split-brain", "vip=10.0.0.10", "node=ctl2"])
        _until(lambda: len(rx.posts) >= 1, "the alert")
        run_cli(
            [
                *base,
                "fire",
                "hactl/event/alert/split-brain",
                "vip=10.0.0.10",
                "node=ctl2",
                "resolved=true",
            ]
        )
        _until(lambda: len(rx.posts) >= 2, "its resolution")
        (first,), (second,) = (json.loads(b) for _, b in rx.posts[:2])
        want = {"alertname": "split-brain", "source": "hactl", "vip": "10.0.0.10", "node": "ctl2"}
        assert first["labels"] == want and first["endsAt"] > first["startsAt"]  # firing
        assert second["labels"] == want and second["startsAt"] == first["startsAt"]
        assert second["endsAt"] < first["endsAt"]  # ended now, before the firing hold
    finally:
        master.stop()
        rx.close()
    assert master.wait(15) == 0


def test_an_open_alert_keeps_firing_until_it_is_resolved(tmp_path: Path) -> None:
    """Alert lifecycle (resend 1 s here): an alert that lasts is posted again and again with
    endsAt moved ahead (Alertmanager's resolve_timeout never ends it), its resolution ends it
    with the firing alert's own labels, and nothing is posted for it afterwards; a resolution
    of an alert never fired posts nothing."""
    rx = Receiver()
    base, master = _alertmanager_master(tmp_path, rx, ", resend: 1s")
    try:
        fire = [*base, "fire", "hactl/event/alert/service-given-up", "node=ctl2"]
        assert run_cli([*fire, "service=haproxy"]).returncode == 0
        _until(lambda: len(rx.posts) >= 4, "the alert and three re-sends", 30)
        posts = [json.loads(b) for _, b in rx.posts]
        ends = [p[0]["endsAt"] for p in posts]
        assert all(len(p) == 1 and "startsAt" in p[0] for p in posts), posts
        assert ends == sorted(ends) and len(set(ends)) == len(ends), ends  # moved ahead
        never = [*base, "fire", "hactl/event/alert/disk-full", "resolved=true"]
        assert run_cli(never).returncode == 0
        seen = len(rx.posts)
        assert run_cli([*fire, "resolved=true"]).returncode == 0  # no service: ends every one
        resolved_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        time.sleep(3.0)  # three re-send periods
        after = [json.loads(b)[0] for _, b in rx.posts[seen:]]
        # a resolution ends the alert at once (endsAt no later than when it was asked); a
        # re-send still in flight when it was asked moves endsAt ahead of that instant
        ended = [i for i, a in enumerate(after) if a["endsAt"] <= resolved_at]
        assert len(ended) == 1 and ended[0] == len(after) - 1, after  # the last word
        assert after[-1]["labels"] == posts[0][0]["labels"]  # the firing alert's own labels
        assert all(a["labels"]["alertname"] == "service-given-up" for a in after)
    finally:
        master.stop()
        rx.close()
    assert master.wait(15) == 0
