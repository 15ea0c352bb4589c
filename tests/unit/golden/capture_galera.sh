#!/usr/bin/env bash
# Capture golden Galera inputs from a real one-node cluster in a guarded network namespace.
set -euo pipefail
OUT=${1:?out dir}; W=$(mktemp -d /tmp/hactl-gcap.XXXX); NS=hactl-gcap-$$
ip route add unreachable 10.99.8.0/24
ip netns add $NS; ip -n $NS link set lo up
ip -n $NS link add d0 type veth peer name d1; ip -n $NS addr add 10.99.8.11/24 dev d0; ip -n $NS link set d1 up; ip -n $NS link set d0 up
cleanup() { [[ -n ${PID:-} ]] && kill -9 $PID 2>/dev/null; sleep 0.5; ip netns del $NS; ip route del unreachable 10.99.8.0/24; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p $W/data $W/tmp
cat > $W/my.cnf <<CNF
[mysqld]
user=mysql
datadir=$W/data
tmpdir=$W/tmp
socket=$W/mysqld.sock
pid-file=$W/mysqld.pid
log-error=$W/error.log
bind-address=10.99.8.11
port=3306
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=32M
innodb_log_file_size=16M
performance_schema=OFF
wsrep_on=ON
wsrep_provider=/usr/lib/galera/libgalera_smm.so
wsrep_cluster_name=goldencluster
wsrep_cluster_address=gcomm://10.99.8.11
wsrep_node_address=10.99.8.11
wsrep_node_name=ctl1
wsrep_sst_method=rsync
wsrep_provider_options="gcache.size=16M"
[client]
socket=$W/mysqld.sock
CNF
chown -R mysql:mysql $W; chmod 755 $W
mariadb-install-db --defaults-file=$W/my.cnf --user=mysql --skip-test-db >/dev/null
start() { ip netns exec $NS setsid /usr/sbin/mariadbd --defaults-file=$W/my.cnf "$@" </dev/null >/dev/null 2>&1 & PID=$!
  for i in $(seq 100); do mariadb -S $W/mysqld.sock -N -B -e "select 1" >/dev/null 2>&1 && return; sleep 0.1; done; echo "no start"; cat $W/error.log; exit 1; }
sql() { mariadb -S $W/mysqld.sock "$@"; }
start --wsrep-new-cluster
for i in $(seq 50); do [[ $(sql -N -B -e "show status like 'wsrep_local_state_comment'" | cut -f2) == Synced ]] && break; sleep 0.1; done
sql -e "create database t; create table t.r (id int primary key); insert into t.r values (1),(2),(3)"
sql -B -e "SHOW GLOBAL STATUS LIKE 'wsrep_%'" > $OUT/wsrep_status_synced.tsv
kill -TERM $PID; while kill -0 $PID 2>/dev/null; do sleep 0.1; done; PID=
cp $W/data/grastate.dat $OUT/grastate_clean_stop.dat
sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' $W/data/grastate.dat
start --wsrep-new-cluster
sql -e "insert into t.r values (4),(5)"
kill -9 $PID; sleep 0.5; PID=
cp $W/data/grastate.dat $OUT/grastate_crash.dat
ip netns exec $NS /usr/sbin/mariadbd --defaults-file=$W/my.cnf --wsrep-recover --log-error=$W/recover.log >/dev/null 2>&1 || true
grep -E 'WSREP' $W/recover.log > $OUT/wsrep_recover.log
# a node cut from its cluster: point it at an absent peer; it ends non-Primary
start --wsrep-new-cluster --wsrep-start-position=$(grep -o '[0-9a-f-]*:[0-9-]*$' $OUT/wsrep_recover.log | tail -1)
timeout 20 mariadb -S $W/mysqld.sock -e "SET GLOBAL wsrep_cluster_address='gcomm://10.99.8.12'" || true
sleep 3
timeout 5 mariadb -S $W/mysqld.sock -B -e "SHOW GLOBAL STATUS LIKE 'wsrep_%'" > $OUT/wsrep_status_non_primary.tsv || true
kill -TERM $PID; for i in $(seq 100); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done; PID=
echo ok
