#!/usr/bin/env bash
# Capture golden RabbitMQ inputs (management API /api/nodes and the local-alarms check, AMQP
# Connection.Start frame) from a real one-node broker in a guarded network namespace. Root; writes into $1.
set -euo pipefail
OUT=${1:?out dir}; W=$(mktemp -d /tmp/hactl-rcap.XXXX); NS=hactl-rcap-$$
ip route add unreachable 10.99.7.0/24
ip netns add $NS; ip -n $NS link set lo up
ip -n $NS link add d0 type veth peer name d1; ip -n $NS addr add 10.99.7.11/24 dev d0
ip -n $NS link set d1 up; ip -n $NS link set d0 up
mkdir -p /etc/netns/$NS; printf '127.0.0.1 localhost\n10.99.7.11 rcap\n' > /etc/netns/$NS/hosts
cleanup() {
  [[ -n ${PID:-} ]] && kill -TERM $PID 2>/dev/null && for i in $(seq 100); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
  for p in $(ip netns pids $NS); do kill -9 $p; done
  ip netns del $NS; ip route del unreachable 10.99.7.0/24; rm -rf "$W" /etc/netns/$NS; }
trap cleanup EXIT
mkdir -p $W/home $W/mnesia $W/log; echo -n hactlgoldencookie > $W/home/.erlang.cookie; chmod 400 $W/home/.erlang.cookie
: > $W/env.conf; echo '[rabbitmq_management].' > $W/enabled_plugins
cat > $W/rabbitmq.conf <<CONF
loopback_users = none
log.console = true
log.file = false
cluster_partition_handling = pause_minority
vm_memory_high_watermark.absolute = 256MiB
disk_free_limit.absolute = 50MB
management.tcp.ip = 127.0.0.1
CONF
export HOME=$W/home RABBITMQ_CONF_ENV_FILE=$W/env.conf RABBITMQ_NODENAME=rabbit@rcap RABBITMQ_USE_LONGNAME=false \
  RABBITMQ_NODE_IP_ADDRESS=10.99.7.11 RABBITMQ_MNESIA_BASE=$W/mnesia RABBITMQ_LOG_BASE=$W/log \
  RABBITMQ_PID_FILE=$W/rabbit.pid RABBITMQ_CONFIG_FILE=$W/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$W/enabled_plugins RABBITMQ_LOGS=-
ip netns exec $NS setsid /usr/lib/rabbitmq/bin/rabbitmq-server > $W/console.log 2>&1 < /dev/null & PID=$!
for i in $(seq 300); do grep -q "Server startup complete" $W/console.log && break; sleep 0.1; done
grep -q "Server startup complete" $W/console.log || { tail $W/console.log; exit 1; }
api() { ip netns exec $NS curl -fsS -m 5 -u guest:guest http://127.0.0.1:15672/api/nodes; }
api | python3 -m json.tool > $OUT/rabbitmq_api_nodes_starting.json   # before the first stats
for i in $(seq 100); do api | grep -q '"partitions"' && break; sleep 0.2; done
api | python3 -m json.tool > $OUT/rabbitmq_api_nodes.json
ip netns exec $NS python3 - "$OUT/amqp_connection_start.bin" <<'PY'
import socket, sys
s = socket.create_connection(("10.99.7.11", 5672), timeout=3); s.sendall(b"AMQP\x00\x00\x09\x01")
open(sys.argv[1], "wb").write(s.recv(64)[:64]); s.close()
PY
# the local-alarms health check while the broker's memory watermark is below its use (503)
/usr/lib/rabbitmq/bin/rabbitmqctl -n rabbit@rcap set_vm_memory_high_watermark 0.0001 > /dev/null
sleep 2
ip netns exec $NS curl -sS -m 5 -u guest:guest http://127.0.0.1:15672/api/health/checks/local-alarms \
  > $OUT/rabbitmq_local_alarms_503.json
/usr/lib/rabbitmq/bin/rabbitmqctl -n rabbit@rcap set_vm_memory_high_watermark absolute 268435456 > /dev/null
echo captured
