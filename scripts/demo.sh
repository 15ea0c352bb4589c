#!/usr/bin/env bash
# The demo: a lab of three real controllers (network namespaces: HAProxy + keepalived VIPs,
# MariaDB Galera, RabbitMQ, a NATS cluster, a minion each, a master with the shipped reactor),
# `hactl apply states/`, then a tour that breaks things and shows hactl repairing them, and
# `hactl lab down`. Needs root (namespaces); without root it runs the bus-only demo instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh   # apt packages, .venv, hactl (idempotent)
HACTL=.venv/bin/hactl
if [[ $(id -u) -ne 0 ]]; then
  echo "hactl demo: not root, so no lab (network namespaces need root); running the bus-only demo"
  exec scripts/demo-bus.sh
fi
LAB=${HACTL_LAB_DIR:-/tmp/hactl-lab}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() { [[ -f $LAB/lab.json ]] && "$HACTL" lab down --dir "$LAB" || true; }
trap cleanup EXIT

step "hactl lab up: 3 controllers in network namespaces, then hactl apply states/ with the lab pillar"
"$HACTL" lab up --dir "$LAB"
export HACTL_NATS=$(python3 -c "import json,sys; print(json.load(open('$LAB/lab.json'))['nats'])")
# the lab's admin identity and CA (hactl lab up made them; docs/security.md)
export HACTL_CREDS=$LAB/auth/creds/lab-admin.nk HACTL_TLS_CA=$LAB/auth/ca.crt

step "hactl lab status"
"$HACTL" lab status --dir "$LAB"

step "hactl status (the cluster view the masters keep, from the minions' beacons)"
# (into a file first: with pipefail, `| head` would kill hactl with SIGPIPE and the demo)
"$HACTL" status > "$LAB/status.txt"
grep -v -E '^│ ctl[23] +│ (be_|galera|rabbitmq)' "$LAB/status.txt" | sed -n '1,40p'

step "the tour: break the real daemons, watch the reactor repair them"
.venv/bin/python -m hactl.lab.tour --dir "$LAB"

step "the reactor's decisions, as stored in JetStream (hactl events tail --since 5m --tag 'hactl/reactor/*/done')"
timeout 5 "$HACTL" events tail --since 5m --tag 'hactl/reactor/*/done' --json \
  | python3 -c 'import json,sys
for l in sys.stdin:
    e=json.loads(l); d=e["data"]; what=", ".join(r["action"] for r in d.get("results") or []) or "set " + str(d.get("to"))
    print(" ", e["tag"].split("/")[2], "for", d.get("event_tag"), "->", what)' \
  | sort | uniq -c | sort -rn | head -12 || true

step "hactl lab down: stops what it started, removes namespaces, routes and files"
"$HACTL" lab down --dir "$LAB"
echo "demo finished"
