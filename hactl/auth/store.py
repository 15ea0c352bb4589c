"""An auth directory: the identities of one deployment, their nkey seeds, a small CA and the
server certificate, and the rendered nats-server configuration.

Layout (``hactl auth init``)::

    identities.json        kinds, names, public keys, revoked ones (no secret; 0644)
    ca.crt  ca.key         the deployment's CA (key 0600)
    server.crt server.key  one server certificate for every NATS server (its SANs: --host)
    route.secret           the cluster routes' password (0600)
    creds/<name>.nk        the nkey seed of each identity (0600): what a process connects with
    nats-auth.conf         the ``authorization`` block rendered from hactl/auth/perms.py (0600)

Secrets are written 0600 through :func:`write_secret` (created with that mode, never widened).
Sites with their own PKI bring their certificates with ``--tls-*`` and ignore the CA here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

import nkeys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hactl.auth.perms import PERSON_ROLES, Identity, render_authorization
from hactl.errors import ConfigError

REGISTRY = "identities.json"
CERT_DAYS = 825
#: certificates are valid from this long before they are made: a node whose clock is behind
#: (a minion 10 minutes slow, issue 26) still accepts a certificate minted a minute ago (public
#: CAs backdate by an hour for the same reason)
NOT_BEFORE_SLACK = dt.timedelta(hours=1)


def write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 from creation on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def new_seed() -> tuple[str, str]:
    """A fresh nkey user seed and its public key."""
    seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
    kp = nkeys.from_seed(bytearray(seed))
    return seed.decode(), kp.public_key.decode()


def public_key_of(seed_file: Path, seed: bytes | None = None) -> str:
    """The public key of the nkey seed in ``seed_file`` (or ``seed`` read from it); a
    :class:`ConfigError` if unreadable."""
    try:
        raw = seed if seed is not None else seed_file.read_bytes().strip()
        return str(nkeys.from_seed(bytearray(raw)).public_key.decode())
    except OSError as exc:
        why = f"cannot read credentials ({exc.strerror})"
        raise ConfigError(why, file=str(seed_file)) from None
    except (nkeys.NkeysError, ValueError, TypeError) as exc:
        raise ConfigError(f"not an nkey seed ({type(exc).__name__})", file=str(seed_file)) from None


@dataclass(frozen=True, slots=True)
class Entry:
    """One identity in the registry."""

    identity: Identity
    revoked: bool = False


class AuthDir:
    """An auth directory (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- paths ---------------------------------------------------------------------------
    @property
    def ca_cert(self) -> Path:
        """The CA certificate every hactl client verifies servers against."""
        return self.root / "ca.crt"

    @property
    def server_cert(self) -> Path:
        """The servers' certificate."""
        return self.root / "server.crt"

    @property
    def server_key(self) -> Path:
        """The servers' private key."""
        return self.root / "server.key"

    @property
    def auth_conf(self) -> Path:
        """The rendered authorization block."""
        return self.root / "nats-auth.conf"

    def creds(self, name: str) -> Path:
        """The seed file of identity ``name``."""
        return self.root / "creds" / f"{name}.nk"

    def route_secret(self) -> str:
        """The cluster route password."""
        return (self.root / "route.secret").read_text(encoding="utf-8").strip()

    # -- registry ------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        """Every identity ever added (revoked ones flagged)."""
        path = self.root / REGISTRY
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return [
                Entry(
                    Identity(str(e["kind"]), str(e["name"]), str(e["public_key"])),
                    bool(e.get("revoked", False)),
                )
                for e in raw["identities"]
            ]
        except FileNotFoundError:
            raise ConfigError(
                "no auth directory here (create one with `hactl auth init`)", file=str(path)
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"unreadable registry ({exc})", file=str(path)) from None

    def active(self) -> list[Identity]:
        """The identities the servers accept."""
        return [e.identity for e in self.entries() if not e.revoked]

    def find(self, name: str) -> Entry:
        """The entry named ``name``."""
        for e in self.entries():
            if e.identity.name == name:
                return e
        raise ConfigError(f"no identity named {name!r} in {self.root}")

    def _save(self, entries: list[Entry]) -> None:
        body = {
            "identities": [
                {
                    "kind": e.identity.kind,
                    "name": e.identity.name,
                    "public_key": e.identity.public_key,
                    "revoked": e.revoked,
                }
                for e in entries
            ]
        }
        tmp = self.root / f".{REGISTRY}.tmp"
        tmp.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
        tmp.replace(self.root / REGISTRY)
        write_secret(self.auth_conf, render_authorization(self.active()).encode())

    # -- changes -------------------------------------------------------------------------
    def add(self, kind: str, name: str) -> Identity:
        """A new identity with a fresh seed in ``creds/<name>.nk``; names are unique."""
        entries = self.entries()
        if any(e.identity.name == name for e in entries):
            raise ConfigError(f"identity {name!r} exists already (rotate or revoke it)")
        seed, public = new_seed()
        ident = Identity(kind, name, public)
        write_secret(self.creds(name), seed.encode() + b"\n")
        self._save([*entries, Entry(ident)])
        return ident

    def add_person(self, name: str, role: str) -> Identity:
        """A named person with ``role`` operator or admin."""
        if role not in PERSON_ROLES:
            raise ConfigError(f"role {role!r}: one of {', '.join(PERSON_ROLES)}")
        return self.add(role, name)

    def revoke(self, name: str) -> Identity:
        """Refuse ``name`` from the next server reload on; its seed file is removed."""
        entries = self.entries()
        found = self.find(name)
        self._save([replace(e, revoked=True) if e == found else e for e in entries])
        self.creds(name).unlink(missing_ok=True)
        return found.identity

    def rotate(self, name: str) -> Identity:
        """A new key for ``name``: the old one is refused from the next reload on."""
        entries = self.entries()
        found = self.find(name)
        if found.revoked:
            raise ConfigError(f"identity {name!r} is revoked; add a new one instead")
        seed, public = new_seed()
        ident = replace(found.identity, public_key=public)
        write_secret(self.creds(name), seed.encode() + b"\n")
        self._save([Entry(ident) if e == found else e for e in entries])
        return ident


def init(
    root: Path,
    *,
    nodes: list[str],
    masters: list[str],
    admins: list[str],
    operators: list[str],
    hosts: list[str],
) -> AuthDir:
    """Create an auth directory: CA, server certificate for ``hosts``, identities, config."""
    if (root / REGISTRY).exists():
        raise ConfigError(f"an auth directory exists already in {root} (add to it instead)")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    ca_key, ca_cert = _make_ca()
    write_secret(root / "ca.key", _key_pem(ca_key))
    (root / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key, cert = _make_leaf(ca_key, ca_cert, hosts)
    write_secret(root / "server.key", _key_pem(key))
    (root / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_secret(root / "route.secret", secrets.token_urlsafe(32).encode() + b"\n")
    auth = AuthDir(root)
    auth._save([])
    for kind, names in (
        ("master", masters),
        ("minion", nodes),
        ("admin", admins),
        ("operator", operators),
    ):
        for name in names:
            auth.add(kind, name)
    return auth


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hactl"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)
_LEAF_USAGE = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)


def _make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("hactl CA"))
        .issuer_name(_name("hactl CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - NOT_BEFORE_SLACK)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, hosts: list[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A server certificate (also valid as a client certificate: cluster routes verify both
    ends) for every name and address in ``hosts``."""
    if not hosts:
        raise ConfigError("a server certificate needs at least one host name or address")
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - NOT_BEFORE_SLACK)
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_LEAF_USAGE, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def server_pem(hosts: list[str]) -> tuple[bytes, bytes]:
    """A new CA and a server certificate it signed for ``hosts``: (the CA certificate, the
    server certificate followed by its private key), both PEM -- the second is HAProxy's
    ``crt`` file. The lab's external VIP uses it; a site brings its own PKI's."""
    ca_key, ca_cert = _make_ca()
    key, cert = _make_leaf(ca_key, ca_cert, hosts)
    pem = serialization.Encoding.PEM
    return ca_cert.public_bytes(pem), cert.public_bytes(pem) + _key_pem(key)
