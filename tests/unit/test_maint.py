"""Maintenance windows on the wire: keys, strict records, what a window covers, expiry."""

from __future__ import annotations

import pytest

from hactl.errors import DecodeError
from hactl.wire.maint import Maintenance, covering, decode, encode, maint_key, parse_records


def test_a_record_round_trips_and_names_its_key() -> None:
    """Encode then decode gives the same window; the key is maint.<node>.<component>."""
    m = Maintenance("ctl2", "galera", "disk swap", "UADMIN", 10.0, 20.0)
    assert decode(encode(m)) == m and m.key() == "maint.ctl2.galera"


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"node": "ctl2"}',
        b'{"node": "ctl2", "component": "shell", '
        b'"reason": "x", "by": "", "since": 1, "until": null}',
        b'{"node": "ctl2\\n", "component": "all", "reason": "x", "by": "", "since": 1, '
        b'"until": null}',
        b'{"node": "ctl2", "component": "all", "reason": "", "by": "", "since": 1, "until": null}',
    ],
)
def test_malformed_records_are_refused(data: bytes) -> None:
    """Not JSON, missing fields, an unknown component, a bad node, an empty reason."""
    with pytest.raises(DecodeError):
        decode(data)


def test_what_a_window_covers_and_when_it_ends() -> None:
    """A component window covers that component of that node; all/all covers everything;
    an expired window covers nothing."""
    galera = Maintenance("ctl2", "galera", "r", since=0.0, until=100.0)
    cluster = Maintenance("all", "all", "r", since=0.0)
    assert covering([galera], "ctl2", "galera", now=50.0) == galera
    assert covering([galera], "ctl2", "rabbitmq", now=50.0) is None
    assert covering([galera], "ctl1", "galera", now=50.0) is None
    assert covering([galera], "ctl2", "galera", now=150.0) is None
    assert covering([cluster], "ctl9", "haproxy", now=1e12) == cluster


def test_a_record_under_the_wrong_key_is_a_problem() -> None:
    """A value stored under another scope's key is ignored and reported."""
    m = Maintenance("ctl2", "galera", "r")
    records, problems = parse_records({"maint.ctl3.galera": encode(m), m.key(): encode(m)})
    assert records == [m] and problems == ["maint.ctl3.galera: holds maint.ctl2.galera"]
    with pytest.raises(DecodeError):
        maint_key("ctl2", "everything")
