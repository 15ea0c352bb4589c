"""Minion idle cost: RSS and CPU of `hactl minion` with every beacon at its default interval.

Starts an embedded nats-server, a real haproxy (admin socket, 3 servers) and the minion with
the vrrp (FIFO + address poll), haproxy and service beacons, plus galera and rabbitmq
(daemons absent: their probes and the grastate fallback still run each second), then
samples /proc for DURATION s.
Prints figures and the ratio to the nats-server's own cost measured in the same run.
Usage: .venv/bin/python benchmarks/minion_idle.py [DURATION_S]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import bench_auth, env
from hactl.bus.embedded import EmbeddedServer, ServerOptions

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    d = Path(tempfile.mkdtemp(prefix="hactl-bench-"))
    sock = d / "admin.sock"
    (d / "haproxy.cfg").write_text(f"""global
  stats socket {sock} mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
backend be_api
  server web1 127.0.0.1:1 check inter 2s
  server web2 127.0.0.1:2 check inter 2s
  server web3 127.0.0.1:3 check inter 2s
""")
    (d / "minion.yaml").write_text(f"""id: bench1
beacons:
  vrrp: {{fifo: {d}/keepalived.fifo, instances: {{VI_1: {{vips: [127.0.0.99]}}}}}}
  haproxy: {{socket: {sock}}}
  service: {{endpoints: [{{name: keystone, url: "http://127.0.0.1:1/"}},
                         {{name: nova, url: "tcp://127.0.0.1:2"}}]}}
  galera: {{socket: {d}/mysqld.sock, datadir: {d}/mysql}}
  rabbitmq: {{node: rabbit@bench, amqp: "127.0.0.1:3", api: "http://127.0.0.1:4"}}
""")
    auth = bench_auth(d)
    server = EmbeddedServer(ServerOptions(data_dir=d / "nats", auth=auth, port=-1))
    url = server.start()
    haproxy = subprocess.Popen(
        ["haproxy", "-db", "-f", str(d / "haproxy.cfg")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    hactl = str(Path(sys.executable).parent / "hactl")
    minion = subprocess.Popen(
        [hactl, "--nats", url, "-q", "minion", "-c", str(d / "minion.yaml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(auth),
    )
    try:
        time.sleep(5.0)  # warm-up: imports, first polls, daemon versions
        m0, n0, t0 = cpu_s(minion.pid), cpu_s(server.pid), time.monotonic()
        peak = 0.0
        while time.monotonic() - t0 < duration:
            time.sleep(1.0)
            peak = max(peak, rss_mb(minion.pid))
        elapsed = time.monotonic() - t0
        m_cpu = (cpu_s(minion.pid) - m0) / elapsed * 100
        n_cpu = (cpu_s(server.pid) - n0) / elapsed * 100
        print(
            f"minion idle over {elapsed:.0f}s: RSS {rss_mb(minion.pid):.1f} MB "
            f"(peak {peak:.1f} MB), CPU {m_cpu:.2f}% of one core "
            "(own process; the `ip` child it runs each second is extra)"
        )
        print(
            f"baseline nats-server in the same run: RSS {rss_mb(server.pid):.1f} MB, "
            f"CPU {n_cpu:.2f}%; minion/nats-server RSS ratio "
            f"{rss_mb(minion.pid) / max(rss_mb(server.pid), 0.1):.2f}"
        )
    finally:
        minion.terminate()
        minion.wait(10)
        haproxy.terminate()
        haproxy.wait(10)
        server.stop()
        shutil.rmtree(d, ignore_errors=True)  # the socket, FIFO, configs and NATS store


if __name__ == "__main__":
    main()
