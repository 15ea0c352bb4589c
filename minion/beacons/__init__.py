"""Beacons: the explicit registry of watchers a minion.yaml may configure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hactl.minion.beacons.base import Beacon, BeaconContext
from hactl.minion.beacons.galera import GaleraBeacon
from hactl.minion.beacons.haproxy import HaproxyBeacon
from hactl.minion.beacons.rabbitmq import RabbitmqBeacon
from hactl.minion.beacons.service import ServiceBeacon
from hactl.minion.beacons.vrrp import VrrpBeacon
from hactl.schema import Field, check

BeaconFactory = Callable[[BeaconContext], Beacon]

REGISTRY: dict[str, BeaconFactory] = {
    "vrrp": VrrpBeacon,
    "haproxy": HaproxyBeacon,
    "service": ServiceBeacon,
    "galera": GaleraBeacon,
    "rabbitmq": RabbitmqBeacon,
}

_NUM = (int, float)


def _interval(default: float) -> Field:
    return Field("interval", _NUM, False, default, between=(0.05, 3600), doc="seconds")


def _timeout(default: float) -> Field:
    return Field("timeout", _NUM, False, default, between=(0.05, 60), doc="seconds")


#: every option each beacon takes, with its default (hactl/schema.py), checked when minion.yaml
#: loads: an unknown option (``intervall``), a wrong type or range (``interval: fast``) is a
#: ``file:line`` error before anything runs. A beacon receives the checked options, defaults
#: filled in (:func:`context`), and reads them by key: its defaults are these, nowhere else.
OPTIONS: dict[str, tuple[Field, ...]] = {
    "vrrp": (
        Field("fifo", (str,), doc="keepalived's vrrp_notify_fifo"),
        _interval(1.0),
        Field("netns", (str,), required=False, default=""),
        Field("track_dir", (str,), required=False, default=""),
        Field("instances", (dict,), required=False, default={}),
        Field(
            "pidfile",
            (str,),
            required=False,
            default="",
            doc="keepalived's pid file: a state unknown at start is asked of keepalived",
        ),
    ),
    "haproxy": (Field("socket", (str,)), _interval(1.0)),
    "service": (
        Field("endpoints", (list,), required=False, default=[]),
        Field("ca", (str,), False, "", doc="CA file of the https endpoints (default the system's)"),
        _timeout(1.0),
        _interval(5.0),
    ),
    "galera": (
        Field("socket", (str,)),
        Field("datadir", (str,)),
        Field("user", (str,), required=False, default="root"),
        Field("password_file", (str,), required=False, default=""),
        _interval(1.0),
        _timeout(1.0),
        Field(
            "min_free",
            (int,),
            False,
            64 * 1024 * 1024,
            between=(0, 1e12),
            doc="bytes: less free on the datadir's filesystem is a full disk",
        ),
    ),
    "rabbitmq": (
        Field("node", (str,)),
        Field("amqp", (str,), False, "127.0.0.1:5672", doc="host:port of the broker's AMQP"),
        Field("api", (str,), False, "http://127.0.0.1:15672", doc="the management API"),
        Field("user", (str,), False, "guest"),
        Field("password", (str,), False, "guest"),
        Field("password_file", (str,), False, "", doc="read at start; wins over password"),
        Field("pidfile", (str,), False, "", doc="the broker's pid file: paused vs dead"),
        Field("service", (str,), False, "", doc="the minion's service running it"),
        Field("epmd_port", (int,), False, 4369, between=(1, 65535), doc="the peers' epmd"),
        Field(
            "resume_grace",
            _NUM,
            False,
            30.0,
            between=(1, 3600),
            doc="seconds a paused broker may take to resume once its cluster is reachable",
        ),
        _interval(1.0),
        _timeout(1.0),
    ),
}


def context(minion_id: str, name: str, options: Mapping[str, Any]) -> BeaconContext:
    """Beacon ``name``'s context: its options checked, defaults filled in (SchemaError when
    they do not fit)."""
    return BeaconContext(minion_id, check(f"beacons.{name}", OPTIONS[name], options))


__all__ = ["OPTIONS", "REGISTRY", "Beacon", "BeaconContext", "BeaconFactory", "context"]
