"""oslo.config files (keystone.conf), read the way oslo.config's ini parser reads them.

Keystone reads its config, and so does ``keystone-manage``, which the minion runs as root
(``keystone.db``) or as the keystone user. Several options there make the program load code
or write where it is told:

- ``log_config_append`` (a ``logging.config`` file: any class, any handler), the eventlet
  ``backdoor_port``/``backdoor_socket`` (a Python shell), ``config_file``/``config_dir``/
  ``config_source`` (more files, unchecked), ``root_helper``/``rootwrap_config`` (commands
  run as root), paste/``api_paste_config`` (factories are code), and
  ``[oslo_policy] policy_dirs`` -- refused wherever they appear;
- a **path** value (``log_file``, ``log_dir``, ``key_repository``, ``policy_file``,
  ``lock_path``, TLS files): confined to ``content_policy.oslo_dirs``;
- ``connection``: a MariaDB/MySQL URL only (``sqlite:`` would write files where it says);
- a line that starts with whitespace continues the previous value in oslo.config, and
  ``#include``-like tricks have no place here: refused, like control characters.
"""

from __future__ import annotations

import re

from hactl.minion.executors.policy.common import (
    ContentPolicy,
    PolicyViolation,
    confined,
    no_control,
)

REFUSED = frozenset(
    {
        "log_config_append",
        "log_config",
        "backdoor_port",
        "backdoor_socket",
        "config_file",
        "config_dir",
        "config_source",
        "root_helper",
        "rootwrap_config",
        "api_paste_config",
        "paste_config",
        "policy_dirs",
        "wsgi_file",
    }
)
PATHS = frozenset(
    {
        "log_file",
        "log_dir",
        "key_repository",
        "policy_file",
        "lock_path",
        "ca_file",
        "cafile",
        "certfile",
        "keyfile",
        "cert_file",
        "key_file",
        "ssl_ca_file",
        "ssl_cert_file",
        "ssl_key_file",
    }
)
_SECTION = re.compile(r"\[([A-Za-z0-9_.-]+)\]")
_OPTION = re.compile(r"([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)")
_DB_URL = re.compile(r"mysql(\+pymysql)?://[^\s]*")


def check(text: str, policy: ContentPolicy) -> None:
    """Raise :class:`PolicyViolation` for the first line oslo.config must not read."""
    for no, line in enumerate(text.split("\n"), 1):
        no_control(no, line, "oslo.config")
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        if line[0] in " \t":
            raise PolicyViolation(no, "oslo.config: an indented line continues a value: refused")
        if _SECTION.fullmatch(line.rstrip()):
            continue
        m = _OPTION.fullmatch(line.rstrip())
        if m is None:
            raise PolicyViolation(no, "oslo.config: not [section] or key = value")
        key, value = m.group(1).replace("-", "_").lower(), m.group(2).strip()
        if key in REFUSED:
            raise PolicyViolation(no, f"oslo.config: {key} loads code or files: refused")
        if key in PATHS and value and not confined(value, policy.oslo_dirs):
            dirs = ", ".join(sorted(policy.oslo_dirs))
            raise PolicyViolation(no, f"oslo.config: {key} {value!r} outside {dirs}")
        if key == "connection" and not _DB_URL.fullmatch(value):
            raise PolicyViolation(no, "oslo.config: connection must be a mysql+pymysql:// URL")


__all__ = ["PATHS", "REFUSED", "check"]
