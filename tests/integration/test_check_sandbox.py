"""Trust III: config checks do not run as root. A minion running as root runs ``haproxy -c``
and every other check command through setpriv as ``check_user`` with only CAP_DAC_READ_SEARCH
(minion/executors/sandbox.py): a check that runs code cannot write what root owns, yet it still
reads root's 0600 files (a certificate, the staged config itself)."""

from __future__ import annotations

import datetime
import os
import pwd
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hactl.minion.executors.base import CommandRefused, ExecContext
from hactl.minion.executors.files import apply
from hactl.minion.executors.policy import ContentPolicy

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox applies to a minion run as root"),
]

#: a hostile checker: says who it runs as, reads the staged file, then tries to plant a file
#: where only root may write (a root-owned 0755 folder)
PROBE = (
    "/bin/sh",
    "-c",
    'id -u; head -c 5 "$1"; echo planted > "$2/marker" && echo WROTE',
    "probe",
    "{path}",
)


def _args(path: Path, content: str, check: str) -> dict[str, object]:
    return {
        "path": str(path),
        "content": content,
        "mode": "0600",
        "owner": None,
        "group": None,
        "check": check,
        "backup": False,
        "makedirs": False,
        "test": False,
    }


async def test_a_hostile_check_runs_as_nobody_and_writes_nothing(tmp_path: Path) -> None:
    """The check program itself tries to write into a root-only folder: it ran as nobody, it
    read the staged (0600) content, the write was refused, and no copy is left behind."""
    guarded = tmp_path / "guarded"
    guarded.mkdir(mode=0o755)
    etc = tmp_path / "etc"
    etc.mkdir()
    ctx = ExecContext(
        minion_id="m",
        allowed_roots=(etc,),
        check_commands={"probe": (*PROBE, str(guarded))},
        content_policy=ContentPolicy(formats=frozenset()),
    )
    before = set(os.listdir("/tmp"))
    out = await apply(ctx, _args(etc / "x.conf", "hello world\n", "probe"))
    assert out["result"] is False, out  # the write failed, so the check failed
    text = out["check_output"]
    assert str(pwd.getpwnam("nobody").pw_uid) in text.split(), text
    assert "hello" in text, text  # the staged copy was readable by the sandbox
    assert "WROTE" not in text, text
    assert not (guarded / "marker").exists()
    assert not (etc / "x.conf").exists(), "a failed check replaced nothing"
    assert not {n for n in set(os.listdir("/tmp")) - before if n.startswith("hactl-check-")}


async def test_haproxy_check_reads_root_only_files(tmp_path: Path) -> None:
    """The real ``haproxy -c`` in the sandbox loads a certificate only root may read (0600):
    checking needs no root, and a config that is wrong is still reported wrong."""
    certs = tmp_path / "certs"
    certs.mkdir(mode=0o700)
    pem = certs / "site.pem"
    pem.write_bytes(_self_signed())
    pem.chmod(0o600)
    etc = tmp_path / "etc"
    etc.mkdir()
    ctx = ExecContext(
        minion_id="m",
        allowed_roots=(etc,),
        content_policy=ContentPolicy(read_dirs=frozenset({str(certs)})),
    )
    good = (
        "defaults\n  mode http\n  timeout connect 1s\n  timeout client 1s\n"
        "  timeout server 1s\nfrontend f\n"
        f"  bind 127.0.0.1:8443 ssl crt {pem}\n  default_backend b\nbackend b\n"
        "  server s1 127.0.0.1:9 check\n"
    )
    out = await apply(ctx, _args(etc / "haproxy.cfg", good, "haproxy"))
    assert out["result"] is True, out
    bad = good.replace("timeout server 1s", "timeout server 1s\n  bogus_keyword 1")
    with pytest.raises(CommandRefused):  # the policy refuses an unknown keyword first
        await apply(ctx, _args(etc / "haproxy.cfg", bad, "haproxy"))
    wrong = good.replace("timeout server 1s", "timeout server 1zz")
    out = await apply(ctx, _args(etc / "haproxy.cfg", wrong, "haproxy"))
    assert out["result"] is False and "timeout server" in out["check_output"], out
    assert str(etc / "haproxy.cfg") in out["check_output"], "the output names the target"


def _self_signed() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
