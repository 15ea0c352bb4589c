"""What a real client saw, per fault window: pure functions over the workload's samples.

The workload (``hactl.lab.workload.run``) records every RPC call (start, end, ok, error) and
how many times the server executed each one, every database transaction (start, end, ok) and
the ids whose COMMIT returned, and, at the end, the ids really in the table. These functions
turn that into the figures issue 24 asks for, for any window ``[since, until]``:

- RPC: calls failed, split into *never executed* and *executed but reported failed* (a caller
  that retries does that work twice); calls executed more than once; the longest time without
  a successful call (the window's edges count: a client that never recovers has a gap as long
  as the rest of the window).
- Database: transactions failed after oslo.db's retries; the longest time without a commit;
  committed rows lost (a COMMIT that returned, whose row is not in the table afterwards).
- Keystone: rounds (a token issued on one node, validated through the VIP) failed, the
  longest time without a good round, failures by issuing node.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

#: one RPC call: (start, end, seq, ok, error) -- wall-clock seconds
Call = tuple[float, float, int, bool, str]
#: one transaction: (start, end, seq, ok[, error: the exception's class and MySQL code])
Txn = tuple[float, float, int, bool] | tuple[float, float, int, bool, str]
#: one Keystone round: (start, end, issuing node's index, ok, error)
Sample = tuple[float, float, int, bool, str]


def longest_gap(done: Iterable[float], since: float, until: float) -> float:
    """The longest time in ``[since, until]`` with no success (edges included)."""
    marks = sorted(t for t in done if since <= t <= until)
    edges = [since, *marks, until]
    return max((b - a for a, b in pairwise(edges)), default=until - since)


@dataclass(frozen=True, slots=True)
class RpcFigures:
    """What an oslo.messaging caller saw in one window."""

    calls: int
    failed: int
    never_executed: int
    executed_but_failed: int
    executed_twice: int
    longest_gap: float
    errors: dict[str, int]
    #: of ``executed_twice``, the calls the broker delivered again flagged ``redelivered``:
    #: an acknowledgement lost with its connection (a partition's cut), which AMQP answers
    #: with at-least-once delivery and oslo.messaging's duplicate check (its listener's last
    #: 16 message ids) did not catch
    twice_redelivered: int = 0
    #: per call run twice (at most 5): its call, its deliveries (time from the window's start,
    #: flagged or not, by which broker, the message id) and its executions
    twice_detail: list[str] = field(default_factory=list)
    #: deliveries to the RPC server recorded in the window (about one per call: the record of
    #: deliveries works)
    deliveries_seen: int = 0


def rpc_figures(
    calls: Sequence[Call],
    executed: Mapping[int, int],
    since: float,
    until: float,
    redelivered: Mapping[int, int] | None = None,
    deliveries: Sequence[Sequence[Any]] = (),
    runs: Sequence[Sequence[Any]] = (),
) -> RpcFigures:
    """The RPC figures of the calls that started in ``[since, until]``; ``redelivered``
    counts, per call, the deliveries the broker flagged as redelivered; ``deliveries``
    (seq, time, redelivered, broker, message id) and ``runs`` (seq, time) explain a call run
    twice."""
    again = redelivered or {}
    inside = [c for c in calls if since <= c[0] <= until]
    failed = [c for c in inside if not c[3]]
    errors = dict(Counter(c[4] for c in failed))
    seqs = {c[2] for c in inside}
    return RpcFigures(
        calls=len(inside),
        failed=len(failed),
        never_executed=sum(1 for c in failed if executed.get(c[2], 0) == 0),
        executed_but_failed=sum(1 for c in failed if executed.get(c[2], 0) > 0),
        executed_twice=sum(1 for s in seqs if executed.get(s, 0) > 1),
        longest_gap=round(longest_gap((c[1] for c in inside if c[3]), since, until), 3),
        errors=errors,
        twice_redelivered=sum(1 for s in seqs if executed.get(s, 0) > 1 and again.get(s, 0) > 0),
        twice_detail=_twice_detail(inside, executed, deliveries, runs, since),
        deliveries_seen=sum(1 for d in deliveries if since <= d[1] <= until),
    )


def _twice_detail(
    calls: Sequence[Call],
    executed: Mapping[int, int],
    deliveries: Sequence[Sequence[Any]],
    runs: Sequence[Sequence[Any]],
    since: float,
) -> list[str]:
    """One line per call run twice (at most 5), its times from ``since``."""
    out: list[str] = []
    for c in calls:
        if executed.get(c[2], 0) < 2 or len(out) == 5:
            continue
        got = [
            f"{d[1] - since:.2f}{' redelivered' if d[2] else ''} from {d[3] or '?'} id {d[4]}"
            for d in deliveries
            if d[0] == c[2]
        ]
        ran = [f"{r[1] - since:.2f}" for r in runs if r[0] == c[2]]
        out.append(
            f"seq {c[2]}: called {c[0] - since:.2f}-{c[1] - since:.2f} "
            f"{'ok' if c[3] else c[4]}; delivered {', '.join(got) or 'unrecorded'}; "
            f"run {', '.join(ran) or 'unrecorded'}"
        )
    return out


@dataclass(frozen=True, slots=True)
class DbFigures:
    """What an oslo.db writer saw in one window."""

    transactions: int
    failed: int
    longest_gap: float
    rows_lost: int
    #: failed transactions by error (``DBConnectionError:1047`` ...)
    errors: dict[str, int]
    #: failed transactions whose row is there: committed, the answer lost with the connection
    #: (oslo.db's retry then met its own row: DBDuplicateEntry); RPC's "run but reported failed"
    committed_but_failed: int = 0


def db_figures(txns: Sequence[Txn], stored: Iterable[int], since: float, until: float) -> DbFigures:
    """The database figures of the transactions that started in ``[since, until]``; rows
    lost counts every confirmed row of the window missing from ``stored``."""
    inside = [t for t in txns if since <= t[0] <= until]
    present = set(stored)
    errors = dict(Counter(str(t[4]) if len(t) > 4 else "?" for t in inside if not t[3]))
    return DbFigures(
        transactions=len(inside),
        failed=sum(1 for t in inside if not t[3]),
        longest_gap=round(longest_gap((t[1] for t in inside if t[3]), since, until), 3),
        rows_lost=sum(1 for t in inside if t[3] and t[2] not in present),
        errors=errors,
        committed_but_failed=sum(1 for t in inside if not t[3] and t[2] in present),
    )


@dataclass(frozen=True, slots=True)
class KeystoneFigures:
    """What a Keystone client saw in one window: token issue + validation rounds."""

    rounds: int
    failed: int
    longest_gap: float
    errors: dict[str, int]
    #: failed rounds by the node that issued the token
    failed_by_issuer: dict[str, int]
    #: rounds whose token was issued but not validated through the VIP (the HA failure: a
    #: node without the signing key, or no Keystone behind the VIP)
    validation_failed: int


def keystone_figures(
    samples: Sequence[Sample], nodes: Sequence[str], since: float, until: float
) -> KeystoneFigures:
    """The Keystone figures of the rounds that started in ``[since, until]``."""
    inside = [s for s in samples if since <= s[0] <= until]
    failed = [s for s in inside if not s[3]]
    errors = dict(Counter(s[4] for s in failed))
    by_node = dict(Counter(nodes[s[2]] if 0 <= s[2] < len(nodes) else str(s[2]) for s in failed))
    return KeystoneFigures(
        rounds=len(inside),
        failed=len(failed),
        longest_gap=round(longest_gap((s[1] for s in inside if s[3]), since, until), 3),
        errors=errors,
        failed_by_issuer=by_node,
        validation_failed=sum(1 for s in failed if s[4].startswith("validate:")),
    )


def figures(samples: Mapping[str, Any], since: float, until: float) -> dict[str, Any]:
    """Both clients' figures for one window of a workload's samples (JSON-ready)."""
    out: dict[str, Any] = {"window": [since, until]}
    if "rpc" in samples:
        rpc = samples["rpc"]
        executed = {int(k): int(v) for k, v in rpc["executed"].items()}
        calls = [tuple(c) for c in rpc["calls"]]
        again = {int(k): int(v) for k, v in rpc.get("redelivered", {}).items()}
        out["rpc"] = asdict(
            rpc_figures(
                calls,
                executed,
                since,
                until,
                again,
                rpc.get("deliveries", ()),
                rpc.get("runs", ()),
            )
        )
    if "db" in samples:
        db = samples["db"]
        if db.get("read_back") is False:  # never "lost": unknown, and said so
            raise ValueError("the workload could not read its rows back at the end")
        txns = [tuple(t) for t in db["txns"]]
        out["db"] = asdict(db_figures(txns, db["stored"], since, until))
    if "keystone" in samples:
        ks = samples["keystone"]
        rounds = [tuple(x) for x in ks["samples"]]
        out["keystone"] = asdict(keystone_figures(rounds, ks["nodes"], since, until))
    return out
