"""TLS as the shipped states render it. HTTPS on the external VIP (pillar
haproxy.external_tls): curl with the site's CA gets an API through the external VIP, plain
HTTP there is refused, horizon's plain port redirects to https, and the internal VIP stays
plain HTTP. TLS inside (pillar internal_tls): Galera and RabbitMQ sessions with the site's
CA, directly and through the internal VIP."""

from __future__ import annotations

import secrets
import socket
import ssl
import subprocess

import pymysql

from hactl.lab import daemons as d
from hactl.lab import lab as L
from tests.lab.conftest import report
from tests.lab.helpers import wait_until

LAB_SHARED = True  # runs on the lab the shared modules share (tests/lab/conftest.py)


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "-m", "5", "-o", "/dev/null", *args],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )


def test_the_external_vip_serves_https_only(lab: L.Lab) -> None:
    """HTTPS with the lab CA: 200 from the API behind; plain HTTP on that port: no answer;
    horizon on :80 there: 301 to https; the internal VIP: plain HTTP 200."""
    ext, internal = lab.net.vip(1), lab.net.vip(0)
    ca = str(lab.dir / "external-ca.crt")
    wait_until(lambda: L.holders(lab)[ext], 20, "an external VIP holder")
    holder = L.holders(lab)[ext][0]
    https = _curl("--cacert", ca, "-w", "%{http_code} %{ssl_verify_result}", f"https://{ext}:9696/")
    assert https.returncode == 0 and https.stdout == "200 0", (https.stdout, https.stderr)
    untrusted = _curl("-w", "%{http_code}", f"https://{ext}:9696/")  # the system CAs only
    assert untrusted.returncode == 60, (untrusted.returncode, untrusted.stderr)  # not verified
    plain = _curl("-w", "%{http_code}", f"http://{ext}:9696/")
    assert plain.returncode != 0 and plain.stdout in ("", "000"), (plain.stdout, plain.stderr)
    redirect = _curl("-w", "%{http_code} %{redirect_url}", f"http://{ext}/")
    assert redirect.stdout == f"301 https://{ext}/", redirect.stdout
    inside = _curl("-w", "%{http_code}", f"http://{internal}:9696/")
    assert inside.stdout == "200", (inside.stdout, inside.stderr)
    report(
        f"external TLS on {holder}'s {ext}: https 200 with the lab CA (verify 0), untrusted "
        f"curl exit {untrusted.returncode}, plain http exit {plain.returncode} "
        f"({plain.stderr.strip()[:60]}), :80 -> 301 https, internal {internal} plain 200"
    )


def _amqps(host: str, ca: str) -> bytes:
    """The first frame a broker sends after an AMQP 0-9-1 header, over verified TLS."""
    tls = ssl.create_default_context(cafile=ca)
    with (
        socket.create_connection((host, 5671), timeout=5) as raw,
        tls.wrap_socket(raw, server_hostname=host) as s,
    ):
        s.sendall(b"AMQP\x00\x00\x09\x01")
        return s.recv(64)


def test_galera_and_rabbitmq_offer_tls_inside(lab: L.Lab) -> None:
    """internal_tls: a MariaDB session through the internal VIP is TLS, verified against the
    lab CA for the VIP's address; every broker (and the VIP, through HAProxy) speaks AMQPS."""
    vip, ca = lab.net.vip(0), str(lab.dir / "internal-ca.crt")
    password = secrets.token_hex(12)
    sock = next(
        lab.node_dir(n) / "mysql/mysqld.sock"
        for n in lab.net.nodes
        if d.galera_state(lab.node_dir(n) / "mysql/mysqld.sock") == ("Primary", "Synced")
    )
    d.galera_sql(sock, f"CREATE USER IF NOT EXISTS 'tlscheck'@'%' IDENTIFIED BY '{password}'")
    try:
        conn = pymysql.connect(
            host=vip,
            user="tlscheck",
            password=password,
            connect_timeout=5,
            read_timeout=5,
            ssl_ca=ca,
            ssl_verify_cert=True,
            ssl_verify_identity=True,
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                cipher = str(cur.fetchone()[1])
        finally:
            conn.close()
    finally:
        d.galera_sql(sock, "DROP USER IF EXISTS 'tlscheck'@'%'")
    assert cipher, "no TLS cipher on the session"
    starts = {h: _amqps(h, ca) for h in (vip, *(lab.net.address(n) for n in lab.net.nodes))}
    for host, frame in starts.items():
        assert frame[:1] == b"\x01" and b"\x00\x0a\x00\x0a" in frame[:16], (host, frame)
    report(
        f"internal TLS: MariaDB through {vip} over {cipher} (CA and address verified); "
        f"AMQPS connection.start from the VIP and all {len(lab.net.nodes)} brokers"
    )
