#!/usr/bin/env bash
# ClickHouse servers for the tests of the ClickHouse store, on loopback ports, as root or not.
#
# Starts (idempotently: whatever already answers is left alone):
#   - one single-node server            HTTP 127.0.0.1:18123
#   - a cluster `hep` of 2 shards x 2 replicas (4 server processes)
#                                        HTTP 127.0.0.1:18124 (s1r1), 18125 (s1r2),
#                                             18126 (s2r1), 18127 (s2r2)
#   - one ZooKeeper for the cluster      127.0.0.1:12181
# Each server has its own config and data directory under $HEPSTACK_CH_DIR, small caches and a
# per-query memory cap, so the five of them fit beside the rest of the test suite.
#
# Installs Debian's clickhouse-server, clickhouse-client and zookeeper when they are missing.
# `scripts/clickhouse.sh stop` stops every process this script started (by pid file).
#
# Environment:
#   HEPSTACK_CH_DIR   scratch directory (default: /tmp/hepstack-clickhouse)
#   HEPSTACK_CH_WAIT  seconds to wait for each server to answer (default 60)
set -euo pipefail

dir="${HEPSTACK_CH_DIR:-/tmp/hepstack-clickhouse}"
wait_s="${HEPSTACK_CH_WAIT:-180}"
zk_port=12181
single_http=18123
cluster_http=(18124 18125 18126 18127)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

answers() { curl -fsS --max-time 2 "http://127.0.0.1:$1/ping" 2>/dev/null | grep -q Ok; }

stop_all() {
  for pidfile in "$dir"/*/pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$pidfile"
  done
}

if [ "${1:-}" = stop ]; then
  stop_all
  exit 0
fi

# --- packages ------------------------------------------------------------------------------------
need=()
[ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server >/dev/null || need+=(clickhouse-server)
command -v clickhouse-client >/dev/null || need+=(clickhouse-client)
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
command -v java >/dev/null || need+=(default-jre-headless)
command -v curl >/dev/null || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
server_bin="$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)"

mkdir -p "$dir"

# --- ZooKeeper -----------------------------------------------------------------------------------
zk_ok() { exec 3<>"/dev/tcp/127.0.0.1/$zk_port" 2>/dev/null && printf ruok >&3 && grep -q imok <&3; }
start_zk() {
  local zd="$dir/zookeeper"
  mkdir -p "$zd/data"
  cat >"$zd/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$zd/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok
maxClientCnxns=200
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
  cat >"$zd/log4j.properties" <<'EOF'
log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d %-5p %m%n
EOF
  # Debian's zookeeper.jar names its dependencies in its manifest.
  local cp="$zd:/usr/share/java/zookeeper.jar"
  nohup java -Xmx256m -Dzookeeper.log.dir="$zd" -Dlog4j.configuration="file:$zd/log4j.properties" \
    -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$zd/zoo.cfg" \
    >"$zd/out.log" 2>&1 &
  echo $! >"$zd/pid"
}

# --- a fresh start ---------------------------------------------------------------------------------
# When neither ZooKeeper nor any server runs, the servers' and ZooKeeper's data are left over from
# an earlier run (tests create databases of their own and a killed run leaves them behind); a
# server loads every one of them before it answers, so a fresh start begins from empty data.
# While anything runs (a test restarting one replica) nothing is removed.
anything_runs=
zk_ok 2>/dev/null && anything_runs=1
for http in "$single_http" "${cluster_http[@]}"; do answers "$http" && anything_runs=1; done
# kill_ours PIDFILE: stops the process a pid file names if it is still ours (a server still
# loading, say); a pid the system has given to another program is left alone.
kill_ours() {
  local pid
  pid="$(cat "$1" 2>/dev/null)" || return 0
  if [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q -- "$dir/"; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
}
if [ -z "$anything_runs" ]; then
  for name in single s1r1 s1r2 s2r1 s2r2 zookeeper; do
    kill_ours "$dir/$name/pid"
    rm -rf "${dir:?}/$name"
  done
fi

# --- ZooKeeper -----------------------------------------------------------------------------------
if zk_ok 2>/dev/null; then
  echo "ZooKeeper answers on 127.0.0.1:$zk_port"
else
  echo "starting ZooKeeper on 127.0.0.1:$zk_port"
  start_zk
  for _ in $(seq 1 "$wait_s"); do zk_ok 2>/dev/null && break; sleep 1; done
  zk_ok 2>/dev/null || { echo "ERROR: ZooKeeper did not answer in ${wait_s}s; see $dir/zookeeper/out.log" >&2; exit 1; }
fi

# --- ClickHouse servers --------------------------------------------------------------------------
# write_config NAME HTTP TCP INTERSERVER SHARD REPLICA
write_config() {
  local name=$1 http=$2 tcp=$3 inter=$4 shard=$5 replica=$6 d="$dir/$1"
  mkdir -p "$d/data" "$d/tmp" "$d/user_files" "$d/format_schemas"
  local cluster=""
  if [ -n "$shard" ]; then
    cluster="
    <remote_servers>
        <hep>
            <shard>
                <internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>19001</port></replica>
                <replica><host>127.0.0.1</host><port>19002</port></replica>
            </shard>
            <shard>
                <internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>19003</port></replica>
                <replica><host>127.0.0.1</host><port>19004</port></replica>
            </shard>
        </hep>
    </remote_servers>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$zk_port</port></node>
        <session_timeout_ms>30000</session_timeout_ms>
    </zookeeper>
    <macros>
        <shard>$shard</shard>
        <replica>$replica</replica>
    </macros>
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>"
  fi
  cat >"$d/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$d/server.log</log>
        <errorlog>$d/server.err.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$http</http_port>
    <tcp_port>$tcp</tcp_port>
    <interserver_http_port>$inter</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <max_connections>256</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>64</max_concurrent_queries>
    <!-- Small caches: five servers share one small test machine. -->
    <uncompressed_cache_size>16777216</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <max_server_memory_usage>1073741824</max_server_memory_usage>
    <path>$d/data/</path>
    <tmp_path>$d/tmp/</tmp_path>
    <user_files_path>$d/user_files/</user_files_path>
    <format_schema_path>$d/format_schemas/</format_schema_path>
    <users_config>$d/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>$cluster
</yandex>
EOF
  cat >"$d/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>536870912</max_memory_usage>
            <max_threads>2</max_threads>
            <background_pool_size>4</background_pool_size>
            <background_schedule_pool_size>4</background_schedule_pool_size>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>in_order</load_balancing>
        </default>
    </profiles>
    <!-- Loopback only; the tests' servers hold nothing but test data. -->
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
EOF
}

start_server() {
  local name=$1 http=$2 d="$dir/$1"
  if answers "$http"; then
    echo "ClickHouse $name answers on 127.0.0.1:$http"
    return
  fi
  echo "starting ClickHouse $name on 127.0.0.1:$http"
  # A server killed hard leaves its status file; the next start refuses while it names a
  # running pid, so only a stale one is removed.
  if [ -f "$d/pid" ] && ! kill -0 "$(cat "$d/pid")" 2>/dev/null; then rm -f "$d/pid" "$d/data/status"; fi
  (cd "$d" || exit 1; nohup "$server_bin" --config-file="$d/config.xml" >"$d/out.log" 2>&1 & echo $! >"$d/pid")
}

write_config single "$single_http" 19000 19009 "" ""
start_server single "$single_http"
n=0
for shard in 1 2; do
  for rep in 1 2; do
    http=${cluster_http[$n]}
    write_config "s${shard}r${rep}" "$http" $((19001 + n)) $((19010 + n)) "$shard" "s${shard}r${rep}"
    start_server "s${shard}r${rep}" "$http"
    n=$((n + 1))
  done
done

for http in "$single_http" "${cluster_http[@]}"; do
  ok=
  for _ in $(seq 1 "$wait_s"); do
    if answers "$http"; then ok=1; break; fi
    sleep 1
  done
  if [ -z "$ok" ]; then
    echo "ERROR: ClickHouse on 127.0.0.1:$http did not answer in ${wait_s}s; logs in $dir" >&2
    exit 1
  fi
done
version="$(curl -fsS --max-time 5 "http://127.0.0.1:$single_http/?query=SELECT%20version()")"
echo "ClickHouse $version: single node 127.0.0.1:$single_http, cluster hep on 127.0.0.1:${cluster_http[*]}"
