"""The explicit action registry: nothing else can run from a rule (no shell, no code)."""

from __future__ import annotations

from hactl.master.reactor.rules.actions import galera, haproxy, misc, rabbitmq
from hactl.master.reactor.rules.actions.base import (
    Action,
    ActionContext,
    ActionFailed,
    Effects,
    Settings,
)

REGISTRY: dict[str, Action] = {
    a.name: a for a in (*haproxy.ACTIONS, *rabbitmq.ACTIONS, *galera.ACTIONS, *misc.ACTIONS)
}

__all__ = ["REGISTRY", "Action", "ActionContext", "ActionFailed", "Effects", "Settings"]
