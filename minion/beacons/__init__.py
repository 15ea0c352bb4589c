"""Beacons: the explicit registry of watchers a minion.yaml may configure."""

from __future__ import annotations

from collections.abc import Callable

from hactl.minion.beacons.base import Beacon, BeaconContext
from hactl.minion.beacons.galera import GaleraBeacon
from hactl.minion.beacons.haproxy import HaproxyBeacon
from hactl.minion.beacons.rabbitmq import RabbitmqBeacon
from hactl.minion.beacons.service import ServiceBeacon
from hactl.minion.beacons.vrrp import VrrpBeacon

BeaconFactory = Callable[[BeaconContext], Beacon]

REGISTRY: dict[str, BeaconFactory] = {
    "vrrp": VrrpBeacon,
    "haproxy": HaproxyBeacon,
    "service": ServiceBeacon,
    "galera": GaleraBeacon,
    "rabbitmq": RabbitmqBeacon,
}

__all__ = ["REGISTRY", "Beacon", "BeaconContext", "BeaconFactory"]
