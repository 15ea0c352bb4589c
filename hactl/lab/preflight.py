"""Before a lab is built: root, the packages, and a folder the daemons' users can reach."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hactl.lab.net import LabError

REQUIRED = {
    "haproxy": "haproxy",
    "keepalived": "keepalived",
    "galera": "mariadbd",
    "rabbitmq": "rabbitmq-server",
    "rsync": "rsync",
    "keystone": "keystone-manage",
}
PACKAGES = "haproxy keepalived mariadb-server galera-4 rsync rabbitmq-server keystone curl"


def preflight(components: set[str]) -> None:
    """Root, the packages, and no leftover lab; clear errors with the install command."""
    if os.geteuid() != 0:
        raise LabError("hactl lab needs root (network namespaces, daemons); run it as root")
    want = ["ip", "curl", *(REQUIRED[c] for c in sorted(components))]
    if "galera" in components:
        want.append("rsync")
    missing = [b for b in want if not (shutil.which(b) or shutil.which(b, path="/usr/sbin:/sbin"))]
    if missing:
        raise LabError(f"missing programs {', '.join(missing)}: apt-get install -y {PACKAGES}")


def reachable_by_daemons(folder: Path) -> None:
    """mysqld and RabbitMQ run as their own users: every existing parent of ``folder`` must
    let others traverse it (``mktemp -d`` makes a 0700 one; InnoDB then fails with a bare
    "Permission denied")."""
    for parent in [folder.resolve(), *folder.resolve().parents]:
        if parent.exists() and parent.stat().st_mode & 0o001 == 0:
            raise LabError(
                f"{parent} is not searchable by other users (mode "
                f"{parent.stat().st_mode & 0o777:o}): mysqld cannot reach the lab under it;"
                f" pick another --dir or chmod o+x {parent}"
            )
