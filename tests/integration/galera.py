"""A real one-node MariaDB Galera cluster on loopback (free ports), for minion tests. Root."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

from hactl.lab.daemons import galera_sql
from tests.integration.daemons import free_port

MARIADBD = "/usr/sbin/mariadbd"
PROVIDER = "/usr/lib/galera/libgalera_smm.so"


def available() -> bool:
    """mariadbd, galera and root are all here."""
    return os.geteuid() == 0 and Path(MARIADBD).exists() and Path(PROVIDER).exists()


class GaleraNode:
    """One node bound to 127.0.0.1 only (SQL, gcomm and IST ports all free-port picked)."""

    def __init__(self) -> None:
        # not under pytest's tmp_path: that is mode 700 and mariadbd runs as mysql
        root = Path(tempfile.mkdtemp(prefix="hactl-galera-"))
        self.dir = root
        self.datadir = root / "data"
        self.socket = root / "mysqld.sock"
        self.pid_file = root / "mysqld.pid"
        self.cnf = root / "my.cnf"
        (root / "tmp").mkdir(parents=True)
        self.datadir.mkdir()
        gcomm, ist = free_port(), free_port()
        self.cnf.write_text(
            f"""[mysqld]
user=mysql
datadir={self.datadir}
tmpdir={root}/tmp
socket={self.socket}
pid-file={self.pid_file}
log-error={root}/error.log
bind-address=127.0.0.1
port={free_port()}
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=32M
innodb_log_file_size=16M
performance_schema=OFF
wsrep_on=ON
wsrep_provider={PROVIDER}
wsrep_cluster_name=hactltest
wsrep_cluster_address=gcomm://127.0.0.1:{gcomm}
wsrep_node_address=127.0.0.1
wsrep_node_name=itm1
wsrep_sst_method=rsync
wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:{gcomm};ist.recv_addr=127.0.0.1:{ist};gcache.size=16M"
[client]
socket={self.socket}
"""
        )
        os.chmod(root, 0o755)
        shutil.chown(root, "mysql", "mysql")
        for p in root.rglob("*"):
            shutil.chown(p, "mysql", "mysql")
        res = subprocess.run(
            ["mariadb-install-db", f"--defaults-file={self.cnf}", "--user=mysql", "--skip-test-db"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if res.returncode:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"mariadb-install-db failed: {res.stderr[-800:]}")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        """Start mariadbd as our child (so we reap it) and wait until it answers."""
        self.proc = subprocess.Popen(
            [MARIADBD, f"--defaults-file={self.cnf}", *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_synced()

    def sql(self, query: str) -> list[tuple[object, ...]]:
        """Run one statement as root over the socket."""
        return galera_sql(self.socket, query)

    def wait_synced(self, timeout: float = 30.0) -> None:
        """Until the node is Synced in a Primary component."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                rows: dict[object, object] = dict(self.sql("SHOW STATUS LIKE 'wsrep_%'"))  # type: ignore[arg-type]  # rows are 2-tuples
                last = (rows.get("wsrep_cluster_status"), rows.get("wsrep_local_state_comment"))
                if last == ("Primary", "Synced"):
                    return
            except pymysql.Error as exc:
                last = exc
            time.sleep(0.1)
        raise TimeoutError(f"galera not synced after {timeout}s: {last}")

    def pid(self) -> int | None:
        """The server's pid from its pid file, if alive."""
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def kill9(self) -> None:
        """Crash the server and wait until the process is gone."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, 9)
            if self.proc is not None and self.proc.pid == pid:
                self.proc.wait(10)
            else:
                _wait_gone(pid)

    def stop(self) -> None:
        """Stop whatever server runs from this datadir (ours or one the minion started)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, 15)
            _wait_gone(pid, 30)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        # a child of another process of ours may linger as a zombie: that counts as gone
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return
        except OSError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)
