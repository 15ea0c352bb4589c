"""How the lab starts each real daemon inside a node namespace, and finds its pid again.

Every process is started in its own session (it must outlive ``hactl lab up``), with its log
in the node's folder, and is recorded by pid in ``lab.json``; pid files are read for the
daemons that fork (haproxy, keepalived, mariadbd, beam).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pymysql

from hactl.lab.net import LabError, LabNet, exec_argv
from hactl.minion.admin_socket import admin_command_blocking
from hactl.minion.beacons.haproxy import parse_show_stat

#: where Debian's rabbitmq-server package keeps its tools (the server, rabbitmqctl, -upgrade)
RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"
API_PORTS = (5000, 35357, 9292, 9191, 8774, 8775, 6080, 9696, 8776, 8004, 8000, 8080, 80, 443)


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` detached (own session, stdin closed, output to ``log``); its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, start_new_session=True
        )
    # reap it the moment it dies: a zombie would still look alive to kill(pid, 0) checks
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()
    return proc.pid


def read_log(path: Path) -> str:
    """A log's text so far ('' before it exists): readiness is read from the daemon's own log."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def alive(pid: int | None) -> bool:
    """A live, non-zombie process."""
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def pid_from(path: Path) -> int | None:
    """The pid in a pid file, if that process lives."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid) else None


def wait_for(check: object, timeout: float, what: str) -> None:
    """Poll ``check()`` (bounded) until true; LabError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise LabError(f"{what} not ready after {timeout:g}s")


def haproxy_items(sock: Path) -> dict[str, dict[str, object]]:
    """backend/server -> the haproxy beacon's item (status, weight, scur ...) on one node's
    admin socket; {} when HAProxy does not answer. Blocking (lab probes)."""
    try:
        items = parse_show_stat(admin_command_blocking(str(sock), "show stat"))
    except (OSError, ValueError):
        return {}
    return {k: dict(v) for k, v in items.items() if v["server"] != "BACKEND"}


def haproxy_servers(sock: Path) -> dict[str, str]:
    """backend/server -> settled status (``UP``, ``DRAIN``, ``MAINT``, ``DOWN``: the beacon's
    ``status``, so ``DRAIN (agent)`` is ``DRAIN`` and ``UP 1/2`` is ``UP``) on one node's admin
    socket; {} when HAProxy does not answer. Blocking (lab probes)."""
    return {k: str(v["status"]) for k, v in haproxy_items(sock).items()}


def galera_sql(
    socket: Path, query: str, *, causal: bool = False, timeout: float = 5.0
) -> list[tuple[object, ...]]:
    """One statement on a node's socket (root, unix_socket auth). ``causal``: the node first
    applies everything the cluster committed before it (wsrep_sync_wait), so a read shows
    every committed row."""
    conn = pymysql.connect(
        unix_socket=str(socket),
        user="root",
        connect_timeout=1,
        read_timeout=timeout,
        ssl_disabled=True,
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            if causal:
                cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute(query)
            return list(cur.fetchall())
    finally:
        conn.close()


def galera_state(socket: Path) -> tuple[str, str] | None:
    """(cluster_status, local_state_comment), or None when the node does not answer."""
    try:
        rows = {str(k): v for k, v in galera_sql(socket, "SHOW STATUS LIKE 'wsrep_%'")}
    except (pymysql.Error, OSError):
        return None
    return str(rows.get("wsrep_cluster_status")), str(rows.get("wsrep_local_state_comment"))


#: each node's Galera datadir is a filesystem of its own (a sparse ext4 image, loop-mounted):
#: a test fills it to the last byte without touching the machine's disk
DATADIR_SIZE = "2G"


def datadir_mount(node_dir: Path) -> None:
    """``mysql/data`` of a node on its own small filesystem (no journal, nothing reserved)."""
    data, image = node_dir / "mysql/data", node_dir / "mysql-data.img"
    data.mkdir(parents=True, exist_ok=True)
    for argv in (
        ["truncate", "-s", DATADIR_SIZE, str(image)],
        ["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", str(image)],
        ["mount", "-o", "loop", str(image), str(data)],
    ):
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if res.returncode != 0:
            raise LabError(f"{argv[0]} for {node_dir.name}'s datadir: {res.stderr[-300:]}")
    (data / "lost+found").rmdir()  # mariadbd would take it for a database


def datadir_unmount(node_dir: Path) -> str:
    """Unmount a node's datadir filesystem (its loop device goes with it); '' or a problem."""
    data = node_dir / "mysql/data"
    if not os.path.ismount(data):
        return ""
    res = subprocess.run(
        ["umount", str(data)], capture_output=True, text=True, timeout=30, check=False
    )
    if res.returncode != 0:  # still busy: detached now, freed when the last user goes
        subprocess.run(["umount", "-l", str(data)], capture_output=True, timeout=30, check=False)
    return "" if not os.path.ismount(data) else f"{data} still mounted"


def galera_init(node_dir: Path) -> None:
    """What ``apt install mariadb-server galera-4`` leaves on a controller: a datadir made by
    ``mariadb-install-db`` (owned by mysql, on its own filesystem: :func:`datadir_mount`)."""
    my = node_dir / "mysql"
    for sub in ("data", "tmp"):
        (my / sub).mkdir(parents=True, exist_ok=True)
    for p in (my, my / "data", my / "tmp"):
        shutil.chown(p, "mysql", "mysql")
    res = subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",  # the package's own, not this machine's /etc/mysql
            f"--datadir={my / 'data'}",
            "--user=mysql",
            "--skip-test-db",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if res.returncode != 0:
        raise LabError(f"mariadb-install-db for {node_dir.name}: {res.stderr[-500:]}")


def galera_standalone(net: LabNet, node: str, node_dir: Path) -> int:
    """The server the package's postinst starts: standalone (no wsrep, the galera config is
    not written yet), on the socket and pid file the galera config will name; hactl's state
    ``galera_member`` stops it and forms the cluster."""
    my = node_dir / "mysql"
    argv = [
        "/usr/sbin/mariadbd",
        "--no-defaults",
        f"--datadir={my / 'data'}",
        f"--socket={my / 'mysqld.sock'}",
        f"--pid-file={my / 'mysqld.pid'}",
        f"--tmpdir={my / 'tmp'}",
        f"--log-error={my / 'standalone.log'}",
        "--user=mysql",
        "--skip-networking",
    ]
    return spawn(exec_argv(net, node, argv), my / "standalone.out")


def rabbit_env(lab: Path, node: str, address: str) -> dict[str, str]:
    """The environment of one RabbitMQ node (LAB-NOTES section 6)."""
    d = lab / node / "rabbit"
    return {
        **os.environ,
        "HOME": str(d / "home"),  # its .erlang.cookie: written by the state rabbitmq_cookie
        "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
        "RABBITMQ_NODENAME": f"rabbit@{node}",
        "RABBITMQ_USE_LONGNAME": "false",
        "RABBITMQ_NODE_IP_ADDRESS": address,
        "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
        "RABBITMQ_LOG_BASE": str(d / "log"),
        "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
        "RABBITMQ_CONFIG_FILE": str(lab / node / "etc" / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
        "RABBITMQ_LOGS": "-",
    }


def rabbitmqctl(
    lab: Path, net: LabNet, node: str, *args: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``rabbitmqctl ARGS`` to ``node``'s broker, from inside its namespace with its own
    environment (never from the root namespace: an epmd would be left there); the caller
    judges the result."""
    ctl = [f"{RABBITMQ_BIN}/rabbitmqctl", "-n", f"rabbit@{node}", *args]
    return subprocess.run(
        exec_argv(net, node, ctl),
        env=rabbit_env(lab, node, net.address(node)),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def rabbit_prepare(lab: Path, node: str) -> None:
    """The folders the rabbitmq-server package makes on a real controller (/var/lib/rabbitmq,
    its log folder) and its empty env file. The cookie and the plugins are the states'
    (rabbitmq_cookie, rabbitmq_plugins), applied before any broker starts."""
    d = lab / node / "rabbit"
    for sub in ("mnesia", "log", "home"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "rabbitmq-env.conf").write_text("")
