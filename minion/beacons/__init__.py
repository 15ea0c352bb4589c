"""Beacons: the explicit registry of watchers a minion.yaml may configure."""

from __future__ import annotations

from collections.abc import Callable

from hactl.minion.beacons.base import Beacon, BeaconContext
from hactl.minion.beacons.galera import GaleraBeacon
from hactl.minion.beacons.haproxy import HaproxyBeacon
from hactl.minion.beacons.rabbitmq import RabbitmqBeacon
from hactl.minion.beacons.service import ServiceBeacon
from hactl.minion.beacons.vrrp import VrrpBeacon
from hactl.schema import Field

BeaconFactory = Callable[[BeaconContext], Beacon]

REGISTRY: dict[str, BeaconFactory] = {
    "vrrp": VrrpBeacon,
    "haproxy": HaproxyBeacon,
    "service": ServiceBeacon,
    "galera": GaleraBeacon,
    "rabbitmq": RabbitmqBeacon,
}

_NUM = (int, float)
_INTERVAL = Field("interval", _NUM, required=False, between=(0.05, 3600), doc="seconds")
_TIMEOUT = Field("timeout", _NUM, required=False, between=(0.05, 60), doc="seconds")

#: every option each beacon takes (hactl/schema.py), checked when minion.yaml loads: an
#: unknown option (``intervall``), a wrong type or range (``interval: fast``) is a
#: ``file:line`` error before anything runs
OPTIONS: dict[str, tuple[Field, ...]] = {
    "vrrp": (
        Field("fifo", (str,), doc="keepalived's vrrp_notify_fifo"),
        _INTERVAL,
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
    "haproxy": (Field("socket", (str,)), _INTERVAL),
    "service": (Field("endpoints", (list,), required=False, default=[]), _TIMEOUT, _INTERVAL),
    "galera": (
        Field("socket", (str,)),
        Field("datadir", (str,)),
        Field("user", (str,), required=False, default="root"),
        Field("password_file", (str,), required=False),
        _INTERVAL,
        _TIMEOUT,
    ),
    "rabbitmq": (
        Field("node", (str,)),
        Field("amqp", (str,), required=False),
        Field("api", (str,), required=False),
        Field("user", (str,), required=False),
        Field("password", (str,), required=False),
        Field("password_file", (str,), required=False),
        Field("pidfile", (str,), required=False, doc="the broker's pid file: paused vs dead"),
        Field("service", (str,), required=False, doc="the minion's service running it"),
        _INTERVAL,
        _TIMEOUT,
    ),
}

__all__ = ["OPTIONS", "REGISTRY", "Beacon", "BeaconContext", "BeaconFactory"]
