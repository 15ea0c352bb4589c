"""The real clients' figures from their samples: gaps with the window's edges, failed calls
split by whether the server ran them, calls run twice, committed rows lost."""

from __future__ import annotations

import pytest

from hactl.lab.workload.report import db_figures, figures, longest_gap, rpc_figures


def test_the_gap_counts_the_window_edges() -> None:
    """No success after the fault: the gap runs to the window's end, not to the last success."""
    assert longest_gap([1.0, 1.5, 2.0], 0.0, 10.0) == 8.0
    assert longest_gap([], 3.0, 5.0) == 2.0
    assert longest_gap([4.0, 9.0, 20.0], 3.0, 10.0) == 5.0  # a success after until is outside


def test_failed_calls_are_split_by_what_the_server_did() -> None:
    """Never run, run but reported failed, run twice; calls outside the window are left out."""
    calls = [
        (0.5, 0.6, 1, True, ""),  # before the window
        (1.0, 1.1, 2, True, ""),
        (1.2, 11.2, 3, False, "timeout"),  # never executed
        (1.3, 11.3, 4, False, "timeout"),  # executed, the reply lost
        (1.4, 1.5, 5, True, ""),  # executed twice (redelivered)
        (11.4, 11.5, 6, True, ""),
    ]
    executed = {1: 1, 2: 1, 4: 1, 5: 2, 6: 1}
    f = rpc_figures(calls, executed, 1.0, 12.0)
    assert (f.calls, f.failed, f.never_executed, f.executed_but_failed) == (5, 2, 1, 1)
    assert f.executed_twice == 1 and f.errors == {"timeout": 2}
    assert f.longest_gap == 10.0  # 1.5 -> 11.5


def test_a_call_run_twice_is_told_apart_by_the_brokers_redelivery() -> None:
    """A call run twice whose second delivery the broker flagged redelivered (an ack lost in a
    cut) is counted apart; one run twice without that flag is not."""
    calls = [(1.0, 1.1, 1, True, ""), (1.2, 11.2, 2, False, "timeout"), (1.3, 1.4, 3, True, "")]
    executed = {1: 2, 2: 2, 3: 1}
    deliveries = [(2, 1.25, False, "b1:5672", "u2"), (2, 9.5, True, "b2:5672", "u2")]
    f = rpc_figures(calls, executed, 0.0, 12.0, {2: 1, 3: 1}, deliveries, [(2, 1.26), (2, 9.51)])
    assert (f.executed_twice, f.twice_redelivered, f.deliveries_seen) == (2, 1, 2)
    assert f.twice_detail[1] == (
        "seq 2: called 1.20-11.20 timeout; delivered 1.25 from b1:5672 id u2, "
        "9.50 redelivered from b2:5672 id u2; run 1.26, 9.51"
    )
    assert f.twice_detail[0].endswith("delivered unrecorded; run unrecorded")
    assert rpc_figures(calls, executed, 0.0, 12.0).twice_redelivered == 0


def test_rows_lost_are_confirmed_commits_missing_afterwards() -> None:
    """A failed transaction is not lost; a confirmed one missing from the table is."""
    txns = [(1.0, 1.01, 10, True), (1.1, 1.2, 11, False), (1.3, 1.31, 12, True)]
    f = db_figures(txns, stored=[10], since=0.0, until=2.0)
    assert (f.transactions, f.failed, f.rows_lost) == (3, 1, 1)
    assert f.longest_gap == 1.01  # 0.0 -> the first commit at 1.01


def test_figures_read_the_workload_json() -> None:
    """JSON's string keys and lists become the figures of both clients."""
    samples = {
        "rpc": {"calls": [[1.0, 1.1, 1, True, ""]], "executed": {"1": 1}},
        "db": {"txns": [[1.0, 1.02, 7, True]], "stored": [7]},
    }
    out = figures(samples, 0.0, 2.0)
    assert out["rpc"]["failed"] == 0 and out["rpc"]["longest_gap"] == 1.1
    assert out["db"]["rows_lost"] == 0 and out["db"]["longest_gap"] == 1.02


def test_rows_not_read_back_are_unknown_not_lost() -> None:
    """A workload that could not read its rows back at the end (its closer timed out) gives
    no figures for the database: never every committed row counted as lost."""
    samples = {"db": {"txns": [[1.0, 1.02, 7, True]], "stored": [], "read_back": False}}
    with pytest.raises(ValueError, match="could not read its rows back"):
        figures(samples, 0.0, 2.0)
    samples["db"].update(stored=[7], read_back=True)
    assert figures(samples, 0.0, 2.0)["db"]["rows_lost"] == 0


def test_keystone_rounds_split_issue_and_validation_failures() -> None:
    """Failed rounds are counted by issuing node and by stage; the gap runs between good
    rounds, the window's edges included."""
    from hactl.lab.workload.report import keystone_figures

    samples = [
        (0.0, 0.2, 0, True, ""),
        (0.5, 0.6, 1, False, "issue:ConnectFailure"),
        (1.0, 1.1, 1, False, "validate:ConnectFailure"),
        (2.0, 2.3, 0, True, ""),
    ]
    f = keystone_figures(samples, ["ctl1", "ctl2"], 0.0, 3.0)
    assert (f.rounds, f.failed, f.validation_failed) == (4, 2, 1)
    assert f.failed_by_issuer == {"ctl2": 2}
    assert f.errors == {"issue:ConnectFailure": 1, "validate:ConnectFailure": 1}
    assert f.longest_gap == 2.1  # 0.2 -> 2.3
