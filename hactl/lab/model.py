"""A lab as recorded: where it lives, its network, what it runs (``<dir>/lab.json``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from hactl.auth.client import ClientAuth, for_identity
from hactl.lab import daemons as d
from hactl.lab import registry
from hactl.lab.bus import LAB_ADMIN
from hactl.lab.net import LabError, LabNet, ip

#: keystone needs galera (its database); a lab without galera has no keystone
COMPONENTS = ("haproxy", "keepalived", "galera", "rabbitmq", "keystone")


@dataclass
class Lab:
    """A lab: where it lives, its network, what it runs (``pids``: name -> pid)."""

    dir: Path
    net: LabNet
    components: set[str]
    pids: dict[str, int] = field(default_factory=dict)
    #: pid -> kernel start time, so a pid the kernel gave to someone else is never signalled
    starts: dict[int, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    supervise: bool = False  # minions restart a dead HAProxy/keepalived (minion.yaml supervision)
    #: minions flag HAProxy's death for keepalived at once (minion.yaml vrrp.watch); off: the
    #: keepalived script check alone (a benchmark's baseline)
    fast_path: bool = True
    galera_profile: str = "lan"  # the pillar's galera.profile (a benchmark's baseline: default)
    resync: float = 30.0  # the minions' resync_interval (a report with no change)

    @property
    def nats_url(self) -> str:
        """All three servers, for clients anywhere in the lab (root namespace included)."""
        return ",".join(f"nats://{self.net.address(n)}:4222" for n in self.net.nodes)

    @property
    def auth_dir(self) -> Path:
        """The lab's identities, CA and server certificate (hactl/auth/store.py)."""
        return self.dir / "auth"

    def client_auth(self, name: str = LAB_ADMIN) -> ClientAuth:
        """Credentials of a lab identity (default: the lab's admin)."""
        return for_identity(self.auth_dir, name)

    def cli_env(self, name: str = LAB_ADMIN) -> dict[str, str]:
        """The environment a ``hactl`` command in the lab runs with, as identity ``name``."""
        return {
            **os.environ,
            "HACTL_NATS": self.nats_url,
            "HACTL_CREDS": str(self.auth_dir / "creds" / f"{name}.nk"),
            "HACTL_TLS_CA": str(self.auth_dir / "ca.crt"),
        }

    def node_dir(self, node: str) -> Path:
        """The node's folder."""
        return self.dir / node

    def save(self) -> None:
        """Write lab.json (what ``down``, ``status`` and ``kill`` read)."""
        for pid in self.pids.values():
            if pid not in self.starts and (started := registry.start_time(pid)):
                self.starts[pid] = started
        state = {
            "subnet": self.net.subnet,
            "prefix": self.net.prefix,
            "nodes": list(self.net.nodes),
            "components": sorted(self.components),
            "supervise": self.supervise,
            "fast_path": self.fast_path,
            "galera_profile": self.galera_profile,
            "pids": self.pids,
            "starts": {str(k): v for k, v in self.starts.items()},
            "timings": self.timings,
            "nats": self.nats_url,
        }
        tmp = self.dir / "lab.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.dir / "lab.json")

    @classmethod
    def load(cls, folder: Path) -> Lab:
        """The lab recorded in ``folder``; LabError when there is none."""
        try:
            s = json.loads((folder / "lab.json").read_text())
        except (OSError, ValueError):
            raise LabError(f"no lab in {folder} (hactl lab up --dir {folder})") from None
        net = LabNet(s["prefix"], s["subnet"], tuple(s["nodes"]))
        lab = cls(
            folder,
            net,
            set(s["components"]),
            supervise=bool(s.get("supervise")),
            fast_path=bool(s.get("fast_path", True)),
            galera_profile=str(s.get("galera_profile", "lan")),
        )
        lab.pids, lab.timings = dict(s["pids"]), dict(s.get("timings", {}))
        lab.starts = {int(k): int(v) for k, v in s.get("starts", {}).items()}
        return lab

    def daemon_pid(self, node: str, component: str) -> int | None:
        """The live pid of one component on one node."""
        nd = self.node_dir(node)
        files = {
            "haproxy": nd / "run/haproxy.pid",
            "keepalived": nd / "run/keepalived.pid",
            "galera": nd / "mysql/mysqld.pid",
            "rabbitmq": nd / "rabbit/rabbit.pid",
            "api": nd / "run/standin.pid",
            "keystone": nd / "run/keystone.pid",
        }
        if component == "rabbitmq":
            return d.pid_from(files[component]) or self._beam_pid(node)
        if component in files:
            return d.pid_from(files[component])
        pid = self.pids.get(f"{component}:{node}")
        return pid if d.alive(pid) else None

    def _beam_pid(self, node: str) -> int | None:
        """The broker's Erlang VM in ``node``'s namespace, found by its command line (a
        broker the minion's supervisor restarted does not always rewrite its pid file); not
        the short-lived VM of a ``rabbitmqctl`` (``-sname rabbitmqcli-...``)."""
        for pid in ip("netns", "pids", self.net.ns(node), check=False).stdout.split():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if argv.split(b"\0")[0].endswith(b"beam.smp") and b"rabbitmqcli" not in argv:
                return int(pid)
        return None
