"""OpenStack's own clients as the lab's yardstick (issue 24).

``Workload`` starts ``hactl.lab.workload.run`` (oslo.messaging RPC and an oslo.db writer,
configured by an oslo.config file) in its own process, waits until both clients work, and on
``stop()`` reads back what they saw; ``figures(since, until)`` gives the figures of one fault
window (``report.py``). The client libraries are the ``clients`` extra
(``pip install 'hactl[clients]'``; scripts/install.sh installs them for the tests).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from hactl.lab.config import KEYSTONE_PORT, paths, site_etc
from hactl.lab.daemons import galera_sql
from hactl.lab.model import Lab
from hactl.lab.net import LabError
from hactl.lab.workload.report import figures

READY_TIMEOUT = 60.0
DATABASE = "workload"


def prepare(lab: Lab, node: str = "") -> list[Path]:
    """The configuration files a workload reads, as a service on ``node`` would: hactl's
    rendered client settings of that node, then the workload's own ``[database]
    connection``. The workload's database and user are created first (a deploy step, as
    ``keystone-manage db_sync`` after its ``CREATE DATABASE`` is), through a Synced node."""
    node = node or lab.net.nodes[0]
    clients = Path(paths(lab.dir)["clients_conf"].replace("{id}", node))
    if not clients.is_file():
        raise LabError(f"no {clients}: apply the shipped states (state clients) first")
    secret = lab.dir / "workload-db.pw"
    if not secret.exists():
        secret.write_text(secrets.token_hex(16) + "\n")
        secret.chmod(0o600)
    password = secret.read_text().strip()
    statements = [
        f"CREATE DATABASE IF NOT EXISTS {DATABASE}",
        f"CREATE USER IF NOT EXISTS '{DATABASE}'@'%' IDENTIFIED BY '{password}'",
        f"GRANT ALL ON {DATABASE}.* TO '{DATABASE}'@'%'",
    ]
    errors = []
    for candidate in lab.net.nodes:
        try:
            for sql in statements:
                galera_sql(lab.node_dir(candidate) / "mysql/mysqld.sock", sql)
            break
        except Exception as exc:  # a node down or not Primary: the next one
            errors.append(f"{candidate}: {exc}")
    else:
        raise LabError(f"cannot create the workload database: {'; '.join(errors)}")
    own = lab.dir / "workload.conf"
    own.write_text(
        "[database]\n"
        f"connection = mysql+pymysql://{DATABASE}:{password}@{lab.net.vip(0)}/{DATABASE}\n"
    )
    own.chmod(0o600)
    return [clients, own]


def keystone_options(lab: Lab) -> dict[str, float | str]:
    """The Workload options of the Keystone client on ``lab``: a token issued on each
    controller's Keystone in turn, validated through the internal VIP, as the bootstrap admin
    (the password docs/deploy.md's secrets block made); {} for a lab without Keystone."""
    if "keystone" not in lab.components:
        return {}

    def url(host: str) -> str:
        return f"http://{host}:{KEYSTONE_PORT}/v3"

    return {
        "keystone_issue": ",".join(url(lab.net.address(n)) for n in lab.net.nodes),
        "keystone_validate": url(lab.net.vip(0)),
        "keystone_password_file": str(site_etc(lab.dir) / "keystone-admin.pw"),
        "keystone_period": 0.05,
    }


class Workload:
    """One run of the workload process (a context manager: stopped on exit)."""

    def __init__(
        self,
        *configs: Path,
        rpc: bool = True,
        db: bool = True,
        netns: str = "",
        **opts: float | str,
    ) -> None:
        """``netns``: run the clients inside that namespace, as a service on that controller
        (its minion moves them with a VIP); by default they run in the root namespace, as a
        client on a machine hactl does not manage."""
        self.configs = configs
        self.folder = Path(tempfile.mkdtemp(prefix="hactl-workload-"))
        self.out = self.folder / "samples.json"
        self.argv = [
            *(["ip", "netns", "exec", netns] if netns else []),
            sys.executable,
            "-m",
            "hactl.lab.workload.run",
            *(a for c in configs for a in ("--config", str(c))),
            "--out",
            str(self.out),
            "--ready",
            str(self.folder / "ready"),
            *(["--no-rpc"] if not rpc else []),
            *(["--no-db"] if not db else []),
        ]
        for key, value in opts.items():
            self.argv += [f"--{key.replace('_', '-')}", str(value)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.samples: dict[str, Any] = {}
        self.log: str | None = None  # the log, once stopped

    def start(self) -> Workload:
        """Start the clients; return once a call and a commit succeeded."""
        with (self.folder / "workload.log").open("wb") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT
        while not (self.folder / "ready").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise LabError(f"the workload did not start working: {self.tail()}")
            time.sleep(0.05)
        return self

    def tail(self, lines: int = 15) -> str:
        """The end of the workload's log (oslo's warnings, a traceback)."""
        return " | ".join(self.read_log().strip().splitlines()[-lines:])

    def read_log(self) -> str:
        """The workload's whole log (timed: oslo.messaging's reconnects, oslo.db's retries);
        kept in memory once the run is stopped and its folder removed."""
        if self.log is not None:
            return self.log
        path = self.folder / "workload.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 90.0) -> dict[str, Any]:
        """Stop the clients (SIGTERM: calls in flight finish or time out), read the samples
        and the log, and remove the run's folder (nothing left in /tmp)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.out.exists():
            self.samples = json.loads(self.out.read_text())
        if self.log is None:
            self.log = self.read_log()
            shutil.rmtree(self.folder, ignore_errors=True)
        return self.samples

    def figures(self, since: float, until: float | None = None) -> dict[str, Any]:
        """The clients' figures for ``[since, until]`` (wall clock; until: when it was told to
        stop, before closing)."""
        if not self.samples:
            raise LabError(f"the workload wrote no samples: {self.tail()}")
        try:
            return figures(self.samples, since, until or float(self.samples["stopping"]))
        except ValueError as exc:
            raise LabError(f"{exc}: {self.tail()}") from None

    def __enter__(self) -> Workload:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
