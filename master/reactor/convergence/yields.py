"""The reconciler's split-brain half: start, renew, end the yields that resolve a VIP held
twice (policy: master/reactor/convergence/split_brain.py), and win the neighbours back
for the keeper.

- A split must last ``split_debounce`` (a VIP move reports the new holder a moment before the
  old one lets go); then every holder but the one ranked first yields (``vrrp.yield`` for the
  yield TTL), renewed each pass for the hold, then ended to see whether VRRP hears again (a
  split that comes back doubles the hold, up to ``yield_hold_max``); it ends at once when no
  other node holds the VIP, and by itself within the TTL when no master renews it.
- **Announce**: while both held the VIP, both announced themselves (keepalived sends
  gratuitous ARP on becoming MASTER), so neighbours may still send to the yielding node's MAC
  when it lets the address go; the keeper, MASTER all along, has no reason to announce again
  and clients would wait for their stale entries to expire (~30 s measured in the lab, with
  every request lost). Once the view shows the yielder released the VIP, the keeper is told
  to announce it (``vrrp.announce``), once per yield.

Every decision is audited like the HAProxy corrections (``hactl/reactor/reconcile/<what>``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hactl.errors import CommandError
from hactl.log import get_logger
from hactl.master.reactor.convergence.split_brain import Yield, split_brain
from hactl.schema import SchemaError
from hactl.wire.envelope import new_event
from hactl.wire.tags import MASTER_ID
from hactl.wire.vrrp import ANNOUNCE, VrrpAnnounce, VrrpYield
from hactl.wire.vrrp import COMMAND as YIELD

if TYPE_CHECKING:  # the reconciler owns this helper; no import cycle at run time
    from hactl.master.reactor.convergence.reconciler import Reconciler

log = get_logger("hactl.reconciler")


@dataclass
class YieldKey:
    """The damping state of one (node, instance) yield."""

    first: float = 0.0  # since when a split has wanted this node to yield (0: it does not)
    since: float = 0.0  # when the current yield began
    hold: float = 0.0
    ended: float = 0.0  # when this master last ended it (the probe)
    sent: float = -1e9
    next_try: float = 0.0
    said: str = ""
    announced: float = 0.0  # the yield (its ``since``) the keeper last announced for


class SplitBrains:
    """One reconciler's yields (it calls :meth:`once` at the end of each pass it leads)."""

    def __init__(self, rec: Reconciler) -> None:
        self.rec = rec
        self.keys: dict[str, YieldKey] = {}
        self.split: list[str] = []  # the VIPs held twice at this master's last pass

    async def once(self, now: float) -> list[dict[str, Any]]:
        """Start, renew or end the yields that resolve a VIP held twice."""
        rec, opts = self.rec, self.rec.options
        await self._resolve_alert()
        out: list[dict[str, Any]] = []
        seen = set()
        for y in split_brain(
            rec.view.nodes,
            rec.maintenance(),
            rec.trust(),
            rec.view.as_of,
            restored=rec.view.restored,
        ):
            seen.add(y.key)
            st = self.keys.setdefault(y.key, YieldKey())
            if y.held:
                if st.said != y.held:
                    st.said = y.held
                    rec.counts["held"] += 1
                    reason, _, detail = y.held.partition(": ")
                    await self._audit("suppressed", y, {"reason": reason, "detail": detail})
                continue
            st.said = ""
            if not y.want:  # yielding while nobody else holds the VIP: end it now
                st.first = 0.0
                if now >= st.next_try:
                    out.append(await self._send(y, st, 0, now))
                continue
            if not y.yielded:
                st.first = st.first or now
                if now - st.first < opts.split_debounce:
                    rec.poke_later(opts.split_debounce)
                    continue
                if now < st.next_try:
                    continue
                again = st.ended and now - st.ended < 300.0  # it came back after a probe
                st.hold = min(opts.yield_hold_max, st.hold * 2) if again else opts.yield_hold
                st.since, st.ended, st.first = now, 0.0, 0.0
                out.append(await self._send(y, st, opts.yield_ttl, now))
                continue
            st.first = 0.0
            if not st.since:  # a yield this master did not start (it restarted): adopt it
                st.since, st.hold = now, opts.yield_hold
            if y.released and y.keeper and y.vips and st.announced != st.since:
                st.announced = st.since
                out.append(await self._announce(y))
            if now - st.since >= st.hold:
                if st.ended < st.since and now >= st.next_try:  # probe: does VRRP hear again?
                    out.append(await self._send(y, st, 0, now, probe=True))
                continue
            if now - st.sent >= opts.interval - 0.5:
                out.append(await self._send(y, st, opts.yield_ttl, now, quiet=True))
        for key, st in self.keys.items():
            if key not in seen:
                st.first = 0.0
        return out

    async def _request(self, node: str, cmd: str, args: dict[str, Any]) -> str:
        """Send one command; '' when it was done, else why not."""
        try:
            reply = await self.rec.effects.request(
                node, cmd, args, self.rec.options.command_timeout
            )
        except CommandError as exc:
            return exc.detail
        if not (reply.ok and reply.result.get("result")):
            return reply.error_message if not reply.ok else str(reply.result)[:200]
        return ""

    async def _send(
        self,
        y: Yield,
        st: YieldKey,
        seconds: int,
        now: float,
        *,
        probe: bool = False,
        quiet: bool = False,
    ) -> dict[str, Any]:
        rec = self.rec
        ask = VrrpYield(y.instance, seconds)
        fact = y.fact
        if probe:
            fact = (
                f"held {st.hold:g} s: the yield ends so VRRP can show whether it hears again"
                " (a split that comes back doubles the hold)"
            )
        detail = ""
        if rec.observe:
            result: dict[str, Any] = {"ok": True, "observe": True, "would": ask.args()}
        else:
            detail = await self._request(y.node, YIELD, ask.args())
            result = {"ok": not detail, "seconds": seconds, **({"error": detail} if detail else {})}
        if detail:
            st.next_try = now + rec.options.retry
            rec.counts["failed"] += 1
        else:
            st.sent = now
            if seconds == 0:
                st.ended = now
            rec.counts["corrections"] += 0 if quiet else 1
        if quiet and not detail:
            log.debug("vrrp_yield_renewed", key=y.key, seconds=seconds)
            return result
        body = {"fact": fact, "to": "yield" if seconds else "end", **result}
        await self._audit("done" if not detail else "failed", y, body)
        return result

    async def _announce(self, y: Yield) -> dict[str, Any]:
        """Tell the keeper to announce the VIPs the yielder released (once per yield)."""
        rec = self.rec
        detail, result = "", {}
        try:
            ask = VrrpAnnounce(y.instance, y.vips)
        except SchemaError as exc:  # an address a beacon reported that no announce can carry
            detail = str(exc)
        else:
            if rec.observe:
                result = {"ok": True, "observe": True, "would": ask.args()}
            else:
                detail = await self._request(y.keeper, ANNOUNCE, ask.args())
        result = result or {"ok": not detail, **({"error": detail} if detail else {})}
        rec.counts["corrections" if not detail else "failed"] += 1
        fact = (
            f"{y.node} released {','.join(y.vips)} (yield): {y.keeper} announces it holds"
            " them, so neighbours stop sending to the yielding node"
        )
        fields = {"node": y.keeper, "instance": y.instance, "from": "holding", "to": "announce"}
        cause = rec.view.cause.get((y.node, "vrrp"))
        key = f"{y.keeper}:vrrp/{y.instance}"
        await rec.publish(
            "done" if not detail else "failed", key, {**fields, "fact": fact, **result}, cause
        )
        return result

    async def _resolve_alert(self) -> None:
        """No VIP held twice any more (it was at the last pass): the split-brain alert
        (reactors/haproxy.yaml) is resolved, so Alertmanager and webhooks see it end."""
        split = list(self.rec.facts.get("split_brain", ()))  # this pass's plan() computed them
        if self.split and not split and not self.rec.observe:
            data = {"resolved": True, "was": self.split}
            with contextlib.suppress(Exception):  # an alert must not stop convergence
                await self.rec.effects.publish(
                    new_event("hactl/event/alert/split-brain", MASTER_ID, data)
                )
        self.split = split

    async def _audit(self, what: str, y: Yield, data: dict[str, Any]) -> None:
        where = {"node": y.node, "instance": y.instance}
        moves = {"from": "yielding" if y.yielded else "holding", "to": "yield" if y.want else "end"}
        cause = self.rec.view.cause.get((y.node, "vrrp"))
        await self.rec.publish(what, y.key, {**where, **moves, "fact": y.fact, **data}, cause)
