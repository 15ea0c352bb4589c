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

step "give three minions an identity each (hactl auth add-minion; the embedded server reloads)"
for n in ctl1 ctl2 ctl3; do "$HACTL" auth add-minion "$n" >/dev/null; done
"$HACTL" auth list
as() { echo --creds "$DATA/auth/creds/$1.nk"; }

step "an admin may not speak for a minion: the server refuses a forged beacon event"
"$HACTL" fire hactl/beacon/ctl1/vrrp state=BACKUP || echo "(refused, as it must be)"

step "fire events the way minions will, each with its own key"
"$HACTL" $(as ctl1) fire hactl/minion/ctl1/start roles='["controller"]'
"$HACTL" $(as ctl1) fire hactl/beacon/ctl1/vrrp instance=VI_INTERNAL state=MASTER priority=150 vip_here=true
"$HACTL" $(as ctl2) fire hactl/beacon/ctl2/vrrp instance=VI_INTERNAL state=BACKUP priority=100 vip_here=false
"$HACTL" $(as ctl3) fire hactl/beacon/ctl3/galera wsrep_cluster_status=non-Primary wsrep_local_state_comment=Initialized
"$HACTL" $(as ctl3) fire hactl/beacon/ctl3/rabbitmq running=false prev='{"running": true}'
wait "$TAIL"

step "only VRRP events, as JSON lines (events tail --tag 'hactl/beacon/*/vrrp' --json)"
"$HACTL" events tail --since "$START" --tag 'hactl/beacon/*/vrrp' --count 2 --json

step "the master's counters"
"$HACTL" stats

step "stop the master (SIGTERM): it stops its embedded server"
kill -TERM "$MASTER"; wait "$MASTER"; MASTER=""
echo "demo finished: every event above went through NATS and JetStream"
