"""HTTPS on the external VIP, as the shipped states render it (pillar haproxy.external_tls):
curl with the site's CA gets an API through the external VIP, plain HTTP there is refused,
horizon's plain port redirects to https, and the internal VIP stays plain HTTP."""

from __future__ import annotations

import subprocess

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
    https = _curl("--cacert", ca, "-w", "%{http_code} %{ssl_verify_result}", f"https://{ext}:5000/")
    assert https.returncode == 0 and https.stdout == "200 0", (https.stdout, https.stderr)
    untrusted = _curl("-w", "%{http_code}", f"https://{ext}:5000/")  # the system CAs only
    assert untrusted.returncode == 60, (untrusted.returncode, untrusted.stderr)  # not verified
    plain = _curl("-w", "%{http_code}", f"http://{ext}:5000/")
    assert plain.returncode != 0 and plain.stdout in ("", "000"), (plain.stdout, plain.stderr)
    redirect = _curl("-w", "%{http_code} %{redirect_url}", f"http://{ext}/")
    assert redirect.stdout == f"301 https://{ext}/", redirect.stdout
    inside = _curl("-w", "%{http_code}", f"http://{internal}:5000/")
    assert inside.stdout == "200", (inside.stdout, inside.stderr)
    report(
        f"external TLS on {holder}'s {ext}: https 200 with the lab CA (verify 0), untrusted "
        f"curl exit {untrusted.returncode}, plain http exit {plain.returncode} "
        f"({plain.stderr.strip()[:60]}), :80 -> 301 https, internal {internal} plain 200"
    )
