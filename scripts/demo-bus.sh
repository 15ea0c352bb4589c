#!/usr/bin/env bash
# The bus-only demo (no root needed): a master with its embedded NATS (JetStream), events fired
# as minions would, and the live tail showing them. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
HACTL=.venv/bin/hactl
DATA=$(mktemp -d /tmp/hactl-demo.XXXXXX)
export HACTL_DATA_DIR=$DATA
MASTER=""
cleanup() {
  if [[ -n $MASTER ]] && kill -0 "$MASTER" 2>/dev/null; then
    kill -TERM "$MASTER"; wait "$MASTER" || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "start the master (embedded nats-server with JetStream in $DATA)"
"$HACTL" --log-format json master --port -1 2>"$DATA/master.log" &
MASTER=$!
"$HACTL" ping --wait 20
START=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)

step "tail the bus (replays from $START, then follows live; exits after 5 events)"
"$HACTL" events tail --since "$START" --count 5 &
TAIL=$!

step "fire events the way minions will"
"$HACTL" fire hactl/minion/ctl1/start roles='["controller"]'
"$HACTL" fire hactl/beacon/ctl1/vrrp instance=VI_INTERNAL state=MASTER priority=150 vip_here=true
"$HACTL" fire hactl/beacon/ctl2/vrrp instance=VI_INTERNAL state=BACKUP priority=100 vip_here=false
"$HACTL" fire hactl/beacon/ctl3/galera wsrep_cluster_status=non-Primary wsrep_local_state_comment=Initialized
"$HACTL" fire hactl/beacon/ctl3/rabbitmq running=false prev='{"running": true}'
wait "$TAIL"

step "only VRRP events, as JSON lines (events tail --tag 'hactl/beacon/*/vrrp' --json)"
"$HACTL" events tail --since "$START" --tag 'hactl/beacon/*/vrrp' --count 2 --json

step "the master's counters"
"$HACTL" stats

step "stop the master (SIGTERM): it stops its embedded server"
kill -TERM "$MASTER"; wait "$MASTER"; MASTER=""
echo "demo finished: every event above went through NATS and JetStream"
