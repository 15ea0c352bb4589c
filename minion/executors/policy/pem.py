"""Key and certificate files (``*.pem``): PEM blocks and nothing else.

HAProxy's ``crt`` names one file with a certificate chain and its private key. It is the one
file hactl writes whose content spans lines it does not choose; the minion accepts it only as
RFC 7468 blocks of the labels below, so no line of it can be a directive any daemon reads
(every file still passes each daemon's code check as well).
"""

from __future__ import annotations

import re

from hactl.minion.executors.policy.common import PolicyViolation

#: the block labels a certificate file holds (chain, key, DH parameters, a CRL)
LABELS = frozenset(
    {
        "CERTIFICATE",
        "TRUSTED CERTIFICATE",
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "EC PARAMETERS",
        "DH PARAMETERS",
        "X509 CRL",
    }
)
_BASE64 = re.compile(r"[A-Za-z0-9+/=]{1,76}")
_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


def check(text: str) -> None:
    """Raise :class:`PolicyViolation` unless ``text`` is PEM blocks of known labels only."""
    label = ""
    blocks = 0
    for no, line in enumerate(text.replace("\r\n", "\n").rstrip("\n").split("\n"), 1):
        if not label:
            if not line.strip():
                continue
            m = _BEGIN.fullmatch(line)
            if m is None:
                raise PolicyViolation(no, "pem: only BEGIN/END blocks (RFC 7468) are accepted")
            if m.group(1) not in LABELS:
                raise PolicyViolation(no, f"pem: block {m.group(1)!r} is not a key or certificate")
            label = m.group(1)
        elif line == f"-----END {label}-----":
            label, blocks = "", blocks + 1
        elif not _BASE64.fullmatch(line):
            raise PolicyViolation(no, f"pem: a {label} block holds a line that is not base64")
    if label:
        raise PolicyViolation(no, f"pem: the {label} block has no END line")
    if not blocks:
        raise PolicyViolation(1, "pem: no block")
