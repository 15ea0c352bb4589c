"""``galera.database`` (a state resource): one database and its user on the Galera cluster.

What every OpenStack install guide does by hand before ``<service>-manage db_sync``
(``CREATE DATABASE keystone; GRANT ALL PRIVILEGES ON keystone.* TO 'keystone'@'%'
IDENTIFIED BY ...``), as a state: the database if missing, the user if missing, its password
when the pillar's changed (compared by hash, so an unchanged apply changes nothing), and all
privileges on that one database. Run on one member (the states pick the Galera writer): the
cluster replicates the DDL and the accounts to the others.

Names are checked against a strict pattern (they are identifiers in the SQL); the password
travels as a bound parameter, never pasted into the statement.
"""

from __future__ import annotations

import re
from typing import Any

from hactl.minion.beacons.galera import sql_client
from hactl.minion.executors.base import CommandRefused, ExecContext, GaleraSettings

Result = dict[str, Any]
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
HOST = re.compile(r"^[%A-Za-z0-9._:-]{1,60}\Z")
TIMEOUT = 10.0  # s per statement: DDL waits for the cluster's total order


def check_names(args: dict[str, Any]) -> None:
    """Refuse a name or host the SQL could read as more than an identifier."""
    for key, pattern in (("name", NAME), ("user", NAME), ("host", HOST)):
        if not pattern.match(str(args.get(key) or "")):
            raise CommandRefused("galera.database", f"bad {key} {args.get(key)!r}")


def _connect(g: GaleraSettings) -> Any:
    pymysql = sql_client()
    return pymysql.connect(
        unix_socket=g.socket,
        user="root",
        connect_timeout=TIMEOUT,
        read_timeout=TIMEOUT,
        write_timeout=TIMEOUT,
        ssl_disabled=True,
        autocommit=True,
    )


def ensure(g: GaleraSettings, args: dict[str, Any], test: bool) -> Result:
    """The database, the user, its password and its grant as ``args`` says (synchronous)."""
    check_names(args)
    name, user, host, password = args["name"], args["user"], args["host"], args["password"]
    pymysql = sql_client()
    changes: dict[str, Any] = {}
    try:
        conn = _connect(g)
    except (pymysql.Error, OSError) as exc:
        return {"result": False, "changes": {}, "comment": f"local server: {exc}"}
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep_ready'")
            row = cur.fetchone()
            if not row or str(row[1]) != "ON":
                why = "this node is not a ready member of a Primary component"
                if test:  # a first apply's test: galera_member would form the cluster first
                    return {
                        "result": None,
                        "changes": {"database": name, "user": f"{user}@{host}"},
                        "comment": "would create them once this node is a ready member of a"
                        " Primary component (galera_member forms the cluster first)",
                    }
                return {"result": False, "changes": {}, "comment": why}
            cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", (name,))
            if cur.fetchone() is None:
                changes["database"] = name
                if not test:
                    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
            cur.execute(
                "SELECT authentication_string = PASSWORD(%s) FROM mysql.user"
                " WHERE User=%s AND Host=%s",
                (password, user, host),
            )
            row = cur.fetchone()
            if row is None:
                changes["user"] = f"{user}@{host}"
                if not test:
                    cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
            elif not row[0]:
                changes["password"] = f"{user}@{host}"
                if not test:
                    cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (user, host, password))
            grants = ""
            if row is not None:
                cur.execute("SHOW GRANTS FOR %s@%s", (user, host))
                grants = " ".join(str(r[0]) for r in cur.fetchall())
            if f"ALL PRIVILEGES ON `{name}`.*" not in grants:
                changes["grant"] = f"ALL ON {name}.* TO {user}@{host}"
                if not test:
                    cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@%s", (user, host))
    except pymysql.Error as exc:
        return {"result": False, "changes": changes, "comment": f"{name}: {exc}"}
    finally:
        conn.close()
    if test and changes:
        return {"result": None, "changes": changes, "comment": "would change"}
    return {"result": True, "changes": changes, "comment": f"{name} for {user}@{host}"}


def settings(ctx: ExecContext) -> GaleraSettings:
    """This minion's galera section, or refused."""
    if ctx.galera is None:
        raise CommandRefused("galera.database", "no galera section in this minion's minion.yaml")
    return ctx.galera


__all__ = ["check_names", "ensure", "settings"]
