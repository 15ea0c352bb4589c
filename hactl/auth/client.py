"""How a hactl process proves who it is and checks who it talks to.

A :class:`ClientAuth` names the identity's nkey seed file and the TLS material. Every hactl
connection is TLS, handshake first (no byte in clear, not even the server's INFO), verifies the
server certificate against ``tls_ca`` (or the system trust store when none is given), signs the
server's nonce with the seed and takes its replies on the identity's own inbox prefix. There is
no way to connect without credentials or without TLS.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hactl.auth.perms import inbox_prefix
from hactl.auth.store import public_key_of
from hactl.errors import ConfigError

#: Keepalive: a PING every 0.5 s; the fourth tick with three PINGs unanswered declares the server
#: dead (1.5-2 s after a silent partition) and the client moves to another member. nats-py's
#: defaults (120 s x 2) let a partitioned server hold a master blind for minutes.
PING_INTERVAL_S = 0.5
MAX_OUTSTANDING_PINGS = 3


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """An identity's credentials and the TLS settings of its connections."""

    creds: Path
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: TLS before the server's INFO (nothing in clear text, not even the server's greeting):
    #: the default, for nats-server 2.10.4 and later. Off (``--no-tls-handshake-first``,
    #: ``HACTL_TLS_HANDSHAKE_FIRST=0``) for older servers such as Debian 12's 2.9.10: the
    #: connection still refuses to go on without verified TLS, only the greeting is clear.
    tls_handshake_first: bool = True

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server (hostname and chain)."""
        try:
            ctx = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=str(self.tls_ca) if self.tls_ca else None
            )
            if self.tls_cert is not None and self.tls_key is not None:
                ctx.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        except (OSError, ssl.SSLError) as exc:
            which = self.tls_ca or self.tls_cert or "the system trust store"
            raise ConfigError(f"cannot load TLS material ({exc})", file=str(which)) from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def _is_jwt_creds(self) -> bool:
        try:
            return b"BEGIN NATS USER JWT" in self.creds.read_bytes()
        except OSError as exc:
            why = f"cannot read credentials ({exc.strerror})"
            raise ConfigError(why, file=str(self.creds)) from None

    def public_key(self) -> str:
        """The identity's nkey public key (read from the seed, or the seed in a .creds file)."""
        if self._is_jwt_creds():
            return public_key_of(self.creds, _creds_seed(self.creds))
        return public_key_of(self.creds)

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        key = "user_credentials" if self._is_jwt_creds() else "nkeys_seed"
        return {
            key: str(self.creds),
            "tls": self.ssl_context(),
            "tls_handshake_first": self.tls_handshake_first,
            "inbox_prefix": inbox_prefix(self.public_key()),
            "ping_interval": PING_INTERVAL_S,
            "max_outstanding_pings": MAX_OUTSTANDING_PINGS,
        }


def _creds_seed(path: Path) -> bytes:
    """The seed inside a ``.creds`` file (operator/JWT mode sites)."""
    lines = path.read_bytes().splitlines()
    for i, line in enumerate(lines):
        if b"BEGIN USER NKEY SEED" in line and i + 1 < len(lines):
            return lines[i + 1].strip()
    raise ConfigError("a .creds file without a user seed", file=str(path))


def for_identity(auth_root: Path, name: str) -> ClientAuth:
    """The credentials of ``name`` in an auth directory, verified against its CA."""
    return ClientAuth(creds=auth_root / "creds" / f"{name}.nk", tls_ca=auth_root / "ca.crt")
