"""The state resources that set up what OpenStack services need on the controllers: a
database and its user on Galera (``galera.database``), Keystone's fernet key repository
(``keystone.fernet_keys``) and its schema and bootstrap (``keystone.db``).

``state.apply`` (state.py) takes each type's argument schema from :data:`ARGS`, checks a plan's
resources with :func:`preflight` before the first one runs, and runs them with :func:`run`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hactl.minion.executors import galera_database, keystone
from hactl.minion.executors.base import Arg, CommandRefused, ExecContext, Executor
from hactl.minion.executors.files import allowed_path
from hactl.minion.executors.files import apply as file_apply

Result = dict[str, Any]
_S = (str,)

ARGS: dict[str, Executor] = {
    "galera.database": Executor(
        "galera.database",
        (Arg("name", _S), Arg("user", _S), Arg("password", _S), Arg("host", _S, False, "%")),
        file_apply,  # the schema only: run() does the work
    ),
    "keystone.fernet_keys": Executor(
        "keystone.fernet_keys",
        (Arg("dir", _S), Arg("keys", _S), Arg("owner", _S, False), Arg("group", _S, False)),
        file_apply,
    ),
    "keystone.db": Executor(
        "keystone.db",
        (
            Arg("admin_password", _S),
            Arg("region", _S, False, "RegionOne"),
            Arg("public_url", _S, False),
            Arg("internal_url", _S, False),
            Arg("admin_url", _S, False),
        ),
        file_apply,
    ),
}


def preflight(ctx: ExecContext, rtype: str, args: dict[str, Any]) -> None:
    """Refuse a resource this minion cannot run, before any resource of the plan runs."""
    if rtype == "galera.database":
        galera_database.settings(ctx)
        galera_database.check_names(args)
    elif rtype == "keystone.fernet_keys":
        keystone.parse_keys(args["keys"])
        allowed_path(ctx, args["dir"])
    elif rtype == "keystone.db" and ctx.keystone is None:
        raise CommandRefused("keystone.db", "no keystone section in this minion's minion.yaml")


async def run(ctx: ExecContext, rtype: str, args: dict[str, Any], test: bool) -> Result:
    """Run one resource of :data:`ARGS`."""
    if rtype == "galera.database":
        g = galera_database.settings(ctx)
        return await asyncio.to_thread(galera_database.ensure, g, args, test)
    if rtype == "keystone.fernet_keys":
        return await keystone.fernet_keys(ctx, args, test)
    if rtype == "keystone.db":
        return await keystone.keystone_db(ctx, args, test)
    raise CommandRefused("state.apply", f"unknown resource type {rtype!r}")


__all__ = ["ARGS", "preflight", "run"]
