"""Run a shipped systemd unit's ExecStart the way systemd would, on a machine without systemd
as PID 1: the unit's user (a DynamicUser gets a uid of systemd's dynamic range), its
Environment= and EnvironmentFile= values, a credentials directory filled from LoadCredential=
(readable by that user alone, as systemd makes it), its StateDirectory= owned by it, and a
NOTIFY_SOCKET this helper listens on for READY=1.

Only paths are substituted (``/usr/local/bin/hactl`` -> this venv's, ``/etc/hactl`` and
``/var/lib/hactl`` -> folders of the test), as the lab substitutes addresses and paths."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

#: systemd's range for DynamicUser= (systemd.exec(5)); one uid of it, free on these machines
DYNAMIC_UID = 61_999


@dataclass
class Unit:
    """The [Service] settings this emulation honours."""

    exec_start: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    credentials: list[tuple[str, str]] = field(default_factory=list)  # (id, source path)
    dynamic_user: bool = False
    user: str = ""
    state_directory: str = ""
    watchdog_usec: int = 0


def parse(path: Path, hostname: str) -> Unit:
    """The unit file's [Service] section (``%H`` is ``hostname``; ``%d`` stays for run)."""
    unit = Unit(exec_start=[])
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section != "[Service]":
            continue
        key, _, value = line.partition("=")
        value = value.replace("%H", hostname)
        if key == "ExecStart":
            unit.exec_start = shlex.split(value)
        elif key == "Environment":
            for item in shlex.split(value):
                name, _, val = item.partition("=")
                unit.environment[name] = val
        elif key == "LoadCredential":
            ident, _, source = value.partition(":")
            unit.credentials.append((ident, source))
        elif key == "DynamicUser":
            unit.dynamic_user = value == "yes"
        elif key == "User":
            unit.user = value
        elif key == "StateDirectory":
            unit.state_directory = value
        elif key == "WatchdogSec":
            unit.watchdog_usec = int(float(value.rstrip("s")) * 1_000_000)
    return unit


@dataclass
class Started:
    """A unit's main process and the notify socket it reports on."""

    proc: subprocess.Popen[str]
    notify: socket.socket

    def ready(self, timeout: float) -> list[str]:
        """Every notify message until READY=1 (or the process ends, or ``timeout``)."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            self.notify.settimeout(0.2)
            try:
                got += self.notify.recv(4096).decode().splitlines()
            except TimeoutError:
                continue
            if "READY=1" in got:
                break
        return got

    def stop(self) -> str:
        """SIGTERM (systemd's stop), then the process's stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.notify.close()
        return self.proc.stderr.read() if self.proc.stderr else ""


def start(
    unit: Unit,
    work: Path,
    paths: dict[str, str],
    env_file: dict[str, str] | None = None,
) -> Started:
    """Start ``unit`` as systemd would, with ``paths`` substituted in its command line,
    environment and credential sources; ``env_file``: what its EnvironmentFile= holds."""

    def sub(text: str) -> str:
        for old, new in paths.items():
            text = text.replace(old, new)
        return text

    uid = DYNAMIC_UID if unit.dynamic_user else 0
    run = work / "run"
    run.mkdir(parents=True, exist_ok=True)
    creds = run / "credentials"
    creds.mkdir(mode=0o700)
    for ident, source in unit.credentials:
        shutil.copyfile(sub(source), creds / ident)  # read as root, as systemd does
        os.chmod(creds / ident, 0o400)
        os.chown(creds / ident, uid, uid)
    os.chmod(creds, 0o500)
    os.chown(creds, uid, uid)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/",
        "CREDENTIALS_DIRECTORY": str(creds),
        **{k: sub(v.replace("%d", str(creds))) for k, v in unit.environment.items()},
        **(env_file or {}),
    }
    if unit.watchdog_usec:
        env["WATCHDOG_USEC"] = str(unit.watchdog_usec)
    if unit.state_directory:
        state = Path(sub(f"/var/lib/{unit.state_directory}"))
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chown(state, uid, uid)
    sock_dir = run / "notify"
    sock_dir.mkdir()
    os.chown(sock_dir, uid, uid)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_dir / "notify.sock"))
    os.chown(sock_dir / "notify.sock", uid, uid)
    env["NOTIFY_SOCKET"] = str(sock_dir / "notify.sock")
    argv = [sub(a.replace("%d", str(creds))) for a in unit.exec_start]
    if uid:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv]
    proc = subprocess.Popen(
        argv, env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    return Started(proc, listener)


def reachable_as_dynamic_user(python: str) -> str:
    """Why an unprivileged user cannot run this checkout's Python ('' when it can): a
    checkout under a 0700 home is out of its reach."""
    res = subprocess.run(
        [
            "setpriv",
            f"--reuid={DYNAMIC_UID}",
            f"--regid={DYNAMIC_UID}",
            "--clear-groups",
            python,
            "-c",
            "import hactl.master.daemon",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    return "" if res.returncode == 0 else (res.stderr.strip().splitlines() or ["?"])[-1]
