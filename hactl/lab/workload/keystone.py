"""The workload's Keystone client: keystoneauth1, as every OpenStack client and
keystonemiddleware use it.

One loop per controller (a thread each: a token issue costs Keystone a bcrypt hash, ~0.5 s)
issues a token on that controller's Keystone (``POST /v3/auth/tokens`` as the bootstrap admin,
scoped to project admin: keystoneauth1's ``v3.Password``), then validates it through the VIP
(``GET /v3/auth/tokens`` with ``X-Subject-Token``: what keystonemiddleware does for every API
request, with its connection retries: ``http_request_max_retries``, 3), each over its own
long-lived keystoneauth1 session. A token
issued on ctl1 and validated by whichever Keystone the VIP picks fails unless every node holds
the key ctl1 signed with: the fernet repository hactl keeps identical.

One sample per round: (start, end, node index, ok, ``issue:`` or ``validate:`` + the error's
class name).
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3


def start(args: argparse.Namespace, stop: threading.Event, out: dict[str, Any]) -> list[Any]:
    """Start the token loop (a thread); return its closer."""
    password = Path(args.keystone_password_file).read_text(encoding="utf-8").strip()
    nodes = [u.strip() for u in args.keystone_issue.split(",") if u.strip()]
    plugins = [
        v3.Password(
            auth_url=url,
            username="admin",
            password=password,
            project_name="admin",
            user_domain_id="default",
            project_domain_id="default",
        )
        for url in nodes
    ]
    issuers = [ks_session.Session(auth=p, timeout=args.keystone_timeout) for p in plugins]
    validators = [ks_session.Session(timeout=args.keystone_timeout) for _ in nodes]
    samples: list[tuple[float, float, int, bool, str]] = []
    out["keystone"] = {"samples": samples, "nodes": nodes}
    url = args.keystone_validate.rstrip("/") + "/auth/tokens"

    def loop(node: int) -> None:
        while not stop.is_set():
            t = time.time()
            stage = "issue"
            try:
                plugins[node].invalidate()  # a new token each round, issued on this node
                token = issuers[node].get_token()
                stage = "validate"
                validators[node].get(
                    url,
                    headers={"X-Auth-Token": token, "X-Subject-Token": token},
                    authenticated=False,
                    raise_exc=True,
                    # as keystonemiddleware validates: a connection that fails is tried again
                    # (its http_request_max_retries, rendered in [keystone_authtoken])
                    connect_retries=args.keystone_validate_retries,
                )
                ok, err = True, ""
            except ks_exc.ClientException as exc:  # every failure a client sees is a sample
                ok, err = False, f"{stage}:{type(exc).__name__}"
            except Exception as exc:  # requests' and urllib3's own, unwrapped
                ok, err = False, f"{stage}:{type(exc).__name__}"
            samples.append((t, time.time(), node, ok, err))
            stop.wait(args.keystone_period)

    threads = [threading.Thread(target=loop, args=(n,), daemon=True) for n in range(len(nodes))]
    for th in threads:
        th.start()

    def close() -> None:
        for th in threads:
            th.join(args.keystone_timeout * 2 + 5)

    return [close]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The Keystone client's options (off unless ``--keystone-issue`` is given)."""
    p.add_argument("--keystone-issue", default="", help="comma list of Keystone URLs (…/v3)")
    p.add_argument("--keystone-validate", default="", help="the Keystone URL to validate at")
    p.add_argument("--keystone-password-file", default="", help="the admin password, a file")
    p.add_argument("--keystone-period", type=float, default=0.1)
    p.add_argument("--keystone-timeout", type=float, default=5.0)
    p.add_argument(
        "--keystone-validate-retries",
        type=int,
        default=3,
        help="connection retries of a validation (keystonemiddleware's http_request_max_retries)",
    )


__all__ = ["add_arguments", "start"]
