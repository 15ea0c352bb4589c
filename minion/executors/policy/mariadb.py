"""MariaDB option files, read the way mariadbd (and ``my_print_defaults``) read them.

One line is one option (no continuation: a comment ending in a backslash ends there); ``#``
or ``;`` at the start is a comment; ``[group]`` starts a group; ``key = value``, the key with
dashes or underscores, ``loose-``/``skip-``/``enable-``/``disable-``/``maximum-`` prefixes and
any unambiguous abbreviation of a long option; ``#`` after the value starts a comment.
``!include``/``!includedir`` are refused (an included file is not checked).

Strict mode (a file mariadbd reads: a ``.cnf`` or ``/etc/mysql`` path) allows only the server
groups (``[mysqld]``, ``[server]``, ``[mariadb]``, ``[mariadbd]``, ``[galera]``, with an optional
``-VERSION``) -- never ``[sst]`` (its values reach the SST script's shell), ``[mysqld_safe]``
(``malloc-lib``, ``ledir``) or a client group (``plugin-dir`` + ``default-auth`` load code into
every client) -- and in them only the exact option names below (an abbreviation is refused:
only the server knows what it would stand for), each value in a plain character set.
"""

from __future__ import annotations

import re

from hactl.minion.executors.policy.common import (
    ContentPolicy,
    PolicyViolation,
    no_control,
    unquote,
    words_of,
)

#: options that run or load code: refused in every file (and by abbreviation)
REFUSED = (
    "wsrep_notify_cmd",
    "plugin_load",
    "plugin_load_add",
    "plugin_dir",
    "init_file",
    "malloc_lib",
    "ledir",
    "mysqld",
    "basedir",
)
_VALUED = ("wsrep_provider", "wsrep_sst_method", "user")
_PREFIXES = ("loose_",)
_SWITCHES = ("skip_", "enable_", "disable_", "maximum_")
_KEY = re.compile(r"[A-Za-z0-9_.-]+")
_GROUP = re.compile(r"(mysqld|server|mariadb|mariadbd|galera)(-[0-9.]+)?")
_DANGEROUS_GROUPS = re.compile(
    r"(sst|mysqld_safe|safe_mysqld|mariadb-safe|mariadbd-safe|client.*|mysql|mariadb-client"
    r"|mysqldump|xtrabackup|mariabackup|mariadb-backup)"
)
_PLAIN = re.compile(r"[A-Za-z0-9_.,:/@=+%-]*")
_PROVIDER_OPTIONS = re.compile(r"[A-Za-z0-9_.,:/@=+%; -]*")
ALLOWED = words_of(
    """bind_address port datadir tmpdir socket pid_file log_error log_warnings
    name_resolve binlog_format default_storage_engine max_connections max_allowed_packet
    thread_cache_size table_open_cache table_definition_cache key_buffer_size tmp_table_size
    max_heap_table_size sort_buffer_size join_buffer_size read_buffer_size
    read_rnd_buffer_size character_set_server collation_server character_set_client_handshake
    performance_schema log_bin log_bin_index server_id expire_logs_days
    binlog_expire_logs_seconds log_slave_updates sync_binlog max_binlog_size slow_query_log
    slow_query_log_file long_query_time general_log general_log_file external_locking
    lower_case_table_names sql_mode transaction_isolation tx_isolation wait_timeout
    interactive_timeout connect_timeout net_read_timeout net_write_timeout open_files_limit
    max_connect_errors back_log event_scheduler symbolic_links ssl_ca ssl_cert ssl_key
    ssl_cipher require_secure_transport tls_version explicit_defaults_for_timestamp
    log_output thread_handling thread_pool_size myisam_recover_options query_cache_size
    query_cache_type query_cache_limit report_host local_infile secure_file_priv
    wsrep_on wsrep_provider wsrep_provider_options wsrep_cluster_name wsrep_cluster_address
    wsrep_node_address wsrep_node_name wsrep_node_incoming_address wsrep_sst_method
    wsrep_sst_receive_address wsrep_slave_threads wsrep_applier_threads wsrep_certify_nonpk
    wsrep_max_ws_rows wsrep_max_ws_size wsrep_debug wsrep_retry_autocommit wsrep_sync_wait
    wsrep_causal_reads wsrep_log_conflicts wsrep_auto_increment_control wsrep_gtid_mode
    wsrep_gtid_domain_id wsrep_replicate_myisam wsrep_forced_binlog_format wsrep_sst_donor
    wsrep_sst_donor_rejects_queries wsrep_osu_method wsrep_mode wsrep_ssl_mode
    wsrep_trx_fragment_size wsrep_trx_fragment_unit user"""
)
#: option families allowed by prefix (InnoDB's and the performance schema's own settings)
_FAMILIES = ("innodb_", "performance_schema_", "aria_")


def _option(no: int, line: str) -> tuple[str, str, str] | None:
    """(key as written, normalized key, value) of an option line, or None for other lines."""
    key, sep, value = line.partition("=")
    raw_key = key.strip()
    if not _KEY.fullmatch(raw_key):
        return None
    norm = raw_key.lower().replace("-", "_")
    for prefix in _PREFIXES:
        norm = norm.removeprefix(prefix)
    for prefix in _SWITCHES:
        if norm.startswith(prefix):
            norm = norm[len(prefix) :]
            break
    value = re.split(r"\s#", value, maxsplit=1)[0].strip() if sep else ""
    return raw_key, norm, unquote(value)


def _names(key: str, full: tuple[str, ...]) -> str | None:
    """The option ``key`` stands for: itself, or a name it abbreviates (mysqld accepts an
    unambiguous prefix of a long option)."""
    if key in full:
        return key
    return next((n for n in full if n.startswith(key) and len(key) >= 3), None)


def _valued(no: int, key: str, value: str, policy: ContentPolicy) -> None:
    name = _names(key, _VALUED)
    allowed = {
        "wsrep_provider": policy.providers,
        "wsrep_sst_method": policy.sst_methods,
        "user": policy.db_users,
    }
    if name is not None and value not in allowed[name]:
        raise PolicyViolation(
            no,
            f"mariadb {name}={value!r}: not one of this minion's "
            f"content_policy values ({', '.join(sorted(allowed[name]))})",
        )


def check(text: str, policy: ContentPolicy, *, strict: bool) -> None:
    """Refuse what mariadbd, its SST scripts or a client would run or load (and, strict, any
    group or option not on the allowlist)."""
    group: str | None = None
    extra = policy.added("mariadb")
    for no, raw in enumerate(text.split("\n"), 1):
        if strict:
            no_control(no, raw, "mariadb")
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("!"):
            word = line.split(maxsplit=1)[0]
            if word.startswith("!include"):
                raise PolicyViolation(no, f"{word}: an included file is not checked")
            continue
        if line.startswith("["):
            group = line[1 : line.find("]")].strip().lower() if "]" in line else line[1:]
            if _DANGEROUS_GROUPS.fullmatch(group) or (strict and not _GROUP.fullmatch(group)):
                raise PolicyViolation(
                    no,
                    f"mariadb group [{group}] is refused (only the server's groups: its "
                    "values would reach a script, mysqld_safe or a client)",
                )
            continue
        parsed = _option(no, line)
        if parsed is None:
            if strict:
                raise PolicyViolation(no, f"mariadb: not an option line: {line[:40]!r}")
            continue
        raw_key, key, value = parsed
        if (name := _names(key, REFUSED)) is not None:
            raise PolicyViolation(no, f"mariadb option {name} runs or loads code: refused")
        _valued(no, key, value, policy)
        if not strict:
            continue
        if group is None:
            raise PolicyViolation(no, f"mariadb option {raw_key!r} outside a group")
        if key not in ALLOWED | extra and not key.startswith(_FAMILIES):
            raise PolicyViolation(
                no,
                f"mariadb option {raw_key!r} is not in hactl's allowlist (an abbreviation is "
                "refused too; content_policy.keywords adds one: mariadb:OPTION)",
            )
        charset = _PROVIDER_OPTIONS if key == "wsrep_provider_options" else _PLAIN
        if not charset.fullmatch(value):
            raise PolicyViolation(
                no,
                f"mariadb {raw_key}={value!r}: a character outside the plain set "
                "(letters, digits, _ . , : / @ = + % -) is refused",
            )
