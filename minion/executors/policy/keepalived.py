"""keepalived's config, read the way keepalived 2.2 reads it, against a keyword allowlist.

Words split on any whitespace (space, tab, VT, FF, CR: ``notify_master<TAB>/x`` is
``notify_master``), double quotes keep a word together, a word starting with ``#`` or ``!``
begins a comment, ``{`` and ``}`` open and close blocks wherever they stand. ``include``,
``$NAME`` definitions (expanded anywhere) and ``~SEQ`` generators are refused: they would hide
the rest. Every command keepalived may run (``script``, ``notify*``, ...) must be one of this
minion's ``programs``; the files keepalived creates as root (track files, the notify FIFO) must
sit directly in one of its ``track_dirs``.

Strict mode (a file keepalived reads: ``check: keepalived`` or a keepalived path) also allows
only the keywords below; inside list blocks (``virtual_ipaddress { ... }``, ``track_script``,
...) a line is an item and may not start with any keyword.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from hactl.minion.executors.policy.common import (
    ContentPolicy,
    PolicyViolation,
    no_control,
    unquote,
    words_of,
)

#: keywords whose value keepalived runs as a program
EXEC = words_of(
    """script notify notify_master notify_backup notify_fault notify_stop notify_deleted
    notify_master_rx_lower_pri notify_up notify_down misc_path quorum_up quorum_down
    vrrp_notify_fifo_script lvs_notify_fifo_script notify_fifo_script"""
)
#: keywords whose value is a file keepalived creates or writes as root
_FILES = frozenset({"file", "vrrp_notify_fifo", "notify_fifo", "lvs_notify_fifo"})
#: blocks whose lines are items (addresses, names), not keywords, when opened without a name
_LISTS = words_of(
    """virtual_ipaddress virtual_ipaddress_excluded virtual_routes virtual_rules
    track_interface track_script track_file track_process track_bfd unicast_peer group
    static_ipaddress static_routes static_rules notification_email"""
)
ALLOWED = words_of(
    """global_defs router_id script_user enable_script_security vrrp_version vrrp_notify_fifo
    vrrp_notify_priority_changes notification_email notification_email_from smtp_server
    smtp_connect_timeout vrrp_skip_check_adv_addr vrrp_strict vrrp_garp_interval
    vrrp_gna_interval vrrp_garp_master_delay vrrp_garp_master_repeat vrrp_garp_master_refresh
    vrrp_garp_master_refresh_repeat vrrp_garp_lower_prio_delay vrrp_garp_lower_prio_repeat
    vrrp_lower_prio_no_advert vrrp_higher_prio_send_advert vrrp_priority vrrp_no_swap
    vrrp_rt_priority vrrp_check_unicast_src vrrp_startup_delay max_auto_priority
    dynamic_interfaces vrrp_script interval timeout weight fall rise user init_fail track_file
    file init_file vrrp_instance vrrp_sync_group state interface virtual_router_id priority
    advert_int nopreempt preempt_delay preempt dont_track_primary track_interface
    track_script track_process track_bfd virtual_ipaddress virtual_ipaddress_excluded
    virtual_routes virtual_rules authentication auth_type auth_pass unicast_src_ip
    unicast_peer use_vmac vmac_xmit_base native_ipv6 mcast_src_ip garp_master_delay
    garp_master_refresh garp_master_repeat garp_lower_prio_delay garp_lower_prio_repeat
    lower_prio_no_advert higher_prio_send_advert smtp_alert accept no_accept strict_mode
    version skip_check_adv_addr debug group static_ipaddress static_routes static_rules"""
)
_KEYWORDS = ALLOWED | EXEC | {"include"}
_SPACE = " \t\v\f\r"


def tokens(line: str) -> list[str]:
    """One line's words, braces as words of their own, the comment dropped."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for c in line:
        if quoted:
            cur.append(c)
            quoted = c != '"'
            continue
        if c == '"':
            quoted = True
            cur.append(c)
        elif c in _SPACE or c in "{}":
            if cur:
                out.append("".join(cur))
            cur = []
            if c in "{}":
                out.append(c)
        elif c in "#!" and not cur:
            break
        else:
            cur.append(c)
    if cur:
        out.append("".join(cur))
    return out


def _statements(text: str, strict: bool) -> Iterator[tuple[int, list[str], bool]]:
    """(line, words, inside a list block) for every statement, block headers included."""
    stack: list[bool] = []  # per open block: is it a list?
    for no, raw in enumerate(text.split("\n"), 1):
        if strict:
            no_control(no, raw, "keepalived")
            if "$" in raw:
                raise PolicyViolation(
                    no, "keepalived '$': definitions are refused (they can hide a script)"
                )
        stmt: list[str] = []
        for tok in [*tokens(raw), "\n"]:
            if tok in ("{", "}", "\n"):
                if stmt:
                    yield no, stmt, bool(stack and stack[-1])
                if tok == "{":
                    stack.append(len(stmt) == 1 and stmt[0] in _LISTS)
                elif tok == "}" and stack:
                    stack.pop()
                stmt = []
            else:
                stmt.append(tok)


def check(text: str, policy: ContentPolicy, *, strict: bool) -> None:
    """Refuse what keepalived would run or create outside the policy (and, strict, any
    keyword not on the allowlist)."""
    extra = policy.added("keepalived")
    for no, stmt, in_list in _statements(text, strict):
        # "@ctl1 script ..." applies on host ctl1 only: the same rules
        words = stmt[1:] if stmt[0].startswith("@") else stmt
        if not words:
            continue
        word = words[0]
        if word[0] in "$~":
            raise PolicyViolation(
                no,
                f"keepalived {word!r}: definitions and line generators are refused "
                "(they can hide a script)",
            )
        if word == "include":
            raise PolicyViolation(
                no, "keepalived 'include' is refused (an included file is not checked)"
            )
        if word in EXEC:
            command = unquote(" ".join(words[1:]))
            if command not in policy.programs:
                raise PolicyViolation(
                    no,
                    f"keepalived {word} {command!r}: not one of this minion's "
                    "content_policy.programs",
                )
        if word in _FILES and len(words) > 1:
            _created_file(no, unquote(words[1]), policy)
        if word == "init_file" and "overwrite" in words[1:]:
            raise PolicyViolation(
                no, "keepalived 'init_file ... overwrite' is refused (it rewrites a file as root)"
            )
        item = in_list and word not in _KEYWORDS  # an address or a name in a list block
        if strict and word not in ALLOWED | extra | EXEC and not item:
            raise PolicyViolation(
                no,
                f"keepalived {word!r} is not in hactl's keepalived allowlist "
                "(content_policy.keywords adds one: keepalived:KEYWORD)",
            )


def _created_file(no: int, path: str, policy: ContentPolicy) -> None:
    norm = os.path.normpath(path)
    if not (
        os.path.isabs(path)
        and ".." not in path.split("/")
        and any(os.path.dirname(norm) == os.path.normpath(d) for d in policy.track_dirs)
    ):
        raise PolicyViolation(
            no,
            f"keepalived track file {path!r}: not directly in one of this minion's track"
            f" folders ({', '.join(sorted(policy.track_dirs)) or 'none: minion.yaml vrrp'})",
        )
