"""Where things live and which NATS to talk to.

Resolution of the NATS URL, first match wins: ``--nats`` > ``$HACTL_NATS`` > ``$NATS_URL`` > the
URL recorded by a running ``hactl master`` in ``<data-dir>/nats.json`` (only if that master's pid
is alive). Credentials likewise: ``--creds`` > ``$HACTL_CREDS`` > ``$NATS_CREDS`` > the systemd
credential ``nats.nk`` (``$CREDENTIALS_DIRECTORY``: the shipped units' ``LoadCredential=``) >
the embedded master's ``admin`` identity (its auth directory is in the same record); the CA:
``--tls-ca`` > ``$HACTL_TLS_CA`` > ``$NATS_CA`` > the systemd credential ``ca.crt`` > the
recorded auth directory's CA > the system trust store.
The data dir is ``--data-dir`` > ``$HACTL_DATA_DIR`` > ``$XDG_STATE_HOME/hactl`` >
``~/.local/state/hactl``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hactl.auth.client import ClientAuth
from hactl.errors import ConfigError

LogFormat = Literal["json", "console", "auto"]
URL_FILE = "nats.json"
ENV_NATS = "HACTL_NATS"
ENV_CREDS = "HACTL_CREDS"
ENV_TLS_CA = "HACTL_TLS_CA"
#: systemd's credentials directory (``LoadCredential=``): readable by the unit's user only,
#: whatever the source file's owner -- how the master's dynamic user gets its root-owned key
ENV_CREDENTIALS = "CREDENTIALS_DIRECTORY"
CRED_KEY = "nats.nk"
CRED_CA = "ca.crt"
#: the identity a local CLI uses against the master's embedded server
LOCAL_ADMIN = "admin"
ENV_DATA_DIR = "HACTL_DATA_DIR"
DEFAULT_CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Global options shared by every command."""

    nats_url: str | None
    data_dir: Path
    log_format: LogFormat = "auto"
    verbosity: int = 0
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    creds: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_handshake_first: bool = True  # hactl/auth/client.py ClientAuth


def default_data_dir(env: dict[str, str] | None = None) -> Path:
    """The data dir when none is given on the command line."""
    env = dict(os.environ) if env is None else env
    if env.get(ENV_DATA_DIR):
        return Path(env[ENV_DATA_DIR])
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "/root")) / ".local" / "state")
    return Path(base) / "hactl"


@dataclass(frozen=True, slots=True)
class UrlRecord:
    """What a running master records about its embedded server."""

    url: str
    pid: int
    server_pid: int
    auth_dir: str = ""


def parse_url_record(text: str, source: str) -> UrlRecord:
    """Parse the content of ``nats.json``; raises :class:`ConfigError` naming ``source``."""
    try:
        obj = json.loads(text)
        return UrlRecord(
            url=str(obj["url"]),
            pid=int(obj["pid"]),
            server_pid=int(obj["server_pid"]),
            auth_dir=str(obj.get("auth_dir", "")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"unreadable ({exc})", file=source) from None


def format_url_record(record: UrlRecord) -> str:
    """Serialize a :class:`UrlRecord`."""
    return json.dumps(
        {
            "url": record.url,
            "pid": record.pid,
            "server_pid": record.server_pid,
            "auth_dir": record.auth_dir,
        }
    )


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def recorded_url(data_dir: Path) -> UrlRecord | None:
    """The embedded server a live master recorded in ``data_dir``, if any."""
    path = data_dir / URL_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read ({exc.strerror})", file=str(path)) from None
    record = parse_url_record(text, str(path))
    if not pid_alive(record.pid) or not pid_alive(record.server_pid):
        return None
    return record


def resolve_nats_url(settings: Settings, env: dict[str, str] | None = None) -> str:
    """The NATS URL a client command should use; a clear error when there is none."""
    env = dict(os.environ) if env is None else env
    if settings.nats_url:
        return settings.nats_url
    if env.get(ENV_NATS):
        return env[ENV_NATS]
    if env.get("NATS_URL"):
        return env["NATS_URL"]
    record = recorded_url(settings.data_dir)
    if record is not None:
        return record.url
    raise ConfigError(
        "no NATS to talk to: start `hactl master` (it runs an embedded server and records its "
        f"URL in {settings.data_dir / URL_FILE}), or pass --nats URL / set {ENV_NATS}"
    )


def resolve_auth(settings: Settings, env: dict[str, str] | None = None) -> ClientAuth:
    """The credentials and TLS settings a client command connects with (see the module
    docstring for the order); a clear error when there are no credentials."""
    env = dict(os.environ) if env is None else env
    record = recorded_url(settings.data_dir)
    local = Path(record.auth_dir) if record is not None and record.auth_dir else None
    creds = settings.creds or _env_path(env, ENV_CREDS) or _env_path(env, "NATS_CREDS")
    creds = creds or _credential(env, CRED_KEY)
    if creds is None and local is not None:
        creds = local / "creds" / f"{LOCAL_ADMIN}.nk"
    if creds is None:
        raise ConfigError(
            f"no credentials: pass --creds FILE or set {ENV_CREDS} (an nkey seed or .creds "
            "file from `hactl auth`), or run on the host of an embedded `hactl master`"
        )
    ca = settings.tls_ca or _env_path(env, ENV_TLS_CA) or _env_path(env, "NATS_CA")
    ca = ca or _credential(env, CRED_CA)
    if ca is None and local is not None:
        ca = local / "ca.crt"
    return ClientAuth(
        creds=creds,
        tls_ca=ca,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
        tls_handshake_first=settings.tls_handshake_first,
    )


def resolve_connection(settings: Settings) -> tuple[str, ClientAuth]:
    """URL and credentials of a client command."""
    return resolve_nats_url(settings), resolve_auth(settings)


def _credential(env: dict[str, str], name: str) -> Path | None:
    """A systemd credential of this unit, if systemd passed one by that name."""
    folder = env.get(ENV_CREDENTIALS, "")
    path = Path(folder) / name if folder else None
    return path if path is not None and path.is_file() else None


def _env_path(env: dict[str, str], name: str) -> Path | None:
    value = env.get(name, "")
    return Path(value) if value else None
