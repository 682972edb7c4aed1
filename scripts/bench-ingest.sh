#!/usr/bin/env bash
# End-to-end ingest benchmark: a release `hepstack serve` with the embedded store, fed by
# `hepstack send` with synthetic SIP over TCP (as fast as it goes) or UDP (at a fixed rate).
# Prints messages sent, stored, elapsed, stored/s, loss, peak RSS of the server and (embedded
# store) the bytes on disk per stored message after a clean shutdown.
#
#   scripts/bench-ingest.sh tcp 1000000          # N messages over TCP, unpaced
#   scripts/bench-ingest.sh udp 3000000 50000    # N messages over UDP at R msg/s
#
# HEPSTACK_BENCH_STORE=postgres://postgres@127.0.0.1:5432/hs_bench stores into PostgreSQL
# instead (the database is dropped and created afresh; HOMER 7 tables and indexes); the
# PostgreSQL server's CPU time during the run is then reported per stored row as well.
# HEPSTACK_BENCH_STORE=clickhouse://default@127.0.0.1:18123/hs_bench does the same with
# scripts/clickhouse.sh's single ClickHouse node (its CPU and bytes on disk per row).
# HEPSTACK_BENCH_CONFIG=FILE passes a configuration file to `serve` (e.g. `[hep.writer]
# writer_threads = 4`). HEPSTACK_BENCH_KEEP=1 keeps the data directory for inspection;
# HEPSTACK_BENCH_SEND_ARGS adds arguments to `send` (e.g. `--rtcp-reports 0` for SIP only).
# HEPSTACK_BENCH_SENDERS=N splits the traffic over N senders running at once.
set -euo pipefail
transport=${1:-tcp}; count=${2:-1000000}; rate=${3:-}
: "${CARGO_TARGET_DIR:=$HOME/.cache/hepstack-target}"
bin=$CARGO_TARGET_DIR/release/hepstack
[ -n "${HEPSTACK_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p hepstack
data=$(mktemp -d /tmp/hepstack-bench.XXXXXX)
log=$data/serve.log
store_args=(${HEPSTACK_BENCH_CONFIG:+--config "$HEPSTACK_BENCH_CONFIG"})
pg_cpu() { :; }
ch_http=
if [[ "${HEPSTACK_BENCH_STORE:-}" == clickhouse://* ]]; then
  # ClickHouse: the database is created by the store; CPU is the server process's whose HTTP
  # port the URL names (scripts/clickhouse.sh's single node: its pid file).
  ch_http=${HEPSTACK_BENCH_STORE#*@}; ch_http=${ch_http%%/*}
  ch_db=${HEPSTACK_BENCH_STORE##*/}; ch_db=${ch_db%%\?*}
  curl -fsS "http://$ch_http/" --data-binary "DROP DATABASE IF EXISTS $ch_db" >/dev/null
  store_args=(--store "$HEPSTACK_BENCH_STORE")
  ch_pid=$(cat "${HEPSTACK_CH_DIR:-/tmp/hepstack-clickhouse}/single/pid")
  pg_cpu() { awk '{print $14 + $15}' /proc/$ch_pid/stat; }
elif [ -n "${HEPSTACK_BENCH_STORE:-}" ]; then
  db=${HEPSTACK_BENCH_STORE##*/}; server=${HEPSTACK_BENCH_STORE%/*}
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  store_args=(--store "$HEPSTACK_BENCH_STORE")
  # CPU seconds used so far by every PostgreSQL process (server, backends, WAL writer…).
  pg_cpu() {
    local t=0 pid
    for pid in $(pgrep -x postgres); do
      [ -r /proc/$pid/stat ] || continue
      t=$((t + $(awk '{print $14 + $15}' /proc/$pid/stat)))
    done
    echo "$t"
  }
fi
HEPSTACK_ADMIN_PASSWORD=bench-password-1 "$bin" serve --data-dir "$data" --hep-udp 127.0.0.1:0 \
  --hep-tcp 127.0.0.1:0 --http 127.0.0.1:0 --metrics 127.0.0.1:0 "${store_args[@]}" 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; [ -n "${HEPSTACK_BENCH_KEEP:-}" ] && echo "data kept in $data" >&2 || rm -rf "$data"' EXIT
for _ in $(seq 100); do grep -q '^hepstack: ready' "$log" && break; sleep 0.1; done
addr() { sed -n "s/^hepstack: listening $1 //p" "$log" | head -1; }
metrics=$(addr metrics)
stored() {
  # Also keeps the largest spool size seen (bytes on disk, compressed) in $data/spool_peak.
  curl -s "http://$metrics/metrics" | awk -v f="$data/spool_peak" '
    /^hepstack_packets_stored_total /{print $2}
    /^hepstack_spool_bytes /{b=$2}
    END {p=0; if ((getline l < f) > 0) p=l; if (b+0 > p+0) p=b; print p > f}'
}
# HEPSTACK_BENCH_SENDERS=N runs N senders at once (each its own socket, seed, 1/N of the count
# and of the rate), as several capture agents would.
senders=${HEPSTACK_BENCH_SENDERS:-1}
args=(--to "$transport://$(addr hep-$transport)" --count "$((count / senders))" --no-logs --json ${HEPSTACK_BENCH_SEND_ARGS:-})
[ -n "$rate" ] && args+=(--rate "$((rate / senders))")
pg0=$(pg_cpu)
start=$(date +%s.%N)
# The senders' CPU time (user + system), to tell what the machine had left for serve.
TIMEFORMAT='%U %S'
{ time {
  for i in $(seq "$senders"); do
    "$bin" send "${args[@]}" --seed "$i" >"$data/send.$i.json" &
  done
  wait $(jobs -p | grep -vx "$pid")
}; } 2>"$data/send.cpu"
sent=$(python3 -c 'import json,sys; print(sum(json.load(open(f))["messages"] for f in sys.argv[1:]))' "$data"/send.*.json)
last=-1; now=0; still=0
while :; do
  now=$(stored); now=${now:-0}
  [ "${now%.*}" -ge "$sent" ] && break
  # No progress for 10 s: what is left was lost (a WAL checkpoint or a large spool replay
  # can pause the counter for a few seconds without anything being lost).
  if [ "$now" = "$last" ]; then still=$((still + 1)); [ $still -ge 10 ] && break; else still=0; fi
  last=$now; sleep 1
done
end=$(date +%s.%N)
pg1=$(pg_cpu)
curl -s "http://$metrics/metrics" | grep -E "^hepstack_(packets_(spooled|replayed|dropped|received)|stream_backpressure_[a-z]+)_total" >&2 || true
[ "$transport" = udp ] && awk '/^Udp:/{if(h){print "kernel udp: RcvbufErrors=" $6 " InErrors=" $4 " (whole host, since boot)"} h=1}' /proc/net/snmp >&2
dedup=$(curl -s "http://$metrics/metrics" | awk '/^hepstack_packets_deduplicated_total /{print $2}')
hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
serve_ticks=$(awk '{print $14 + $15}' /proc/$pid/stat)
echo "serve_cpu=$(python3 -c "import os,sys; print(f'{int(sys.argv[1]) / os.sysconf(\"SC_CLK_TCK\"):.1f}s')" "$serve_ticks") ($(python3 -c "import os,sys; print(f'{int(sys.argv[1]) / os.sysconf(\"SC_CLK_TCK\") / max(int(sys.argv[2]), 1) * 1e6:.1f}')" "$serve_ticks" "$(stored)") µs per stored message)" >&2
echo "send_cpu=$(awk '{printf "%.1fs", $1 + $2}' "$data/send.cpu")" >&2
echo "spool_peak=$(( $(cat "$data/spool_peak" 2>/dev/null || echo 0) / 1048576 ))MiB (largest spool size seen after sending ended)" >&2
if [ -n "$ch_http" ]; then
  # Bytes on disk once merged (OPTIMIZE … FINAL): columns, marks and primary index of the
  # data and link tables.
  for t in sip qos logs other links; do
    curl -fsS "http://$ch_http/" --data-binary "OPTIMIZE TABLE $ch_db.$t FINAL" >/dev/null || true
  done
  ch_bytes=$(curl -fsS "http://$ch_http/" --data-binary "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '$ch_db' AND active")
  echo "store_disk=$((ch_bytes / 1048576))MiB ($((ch_bytes / ${now%.*})) bytes per stored message)" >&2
elif [ -z "${HEPSTACK_BENCH_STORE:-}" ]; then
  # Disk per stored message: the store's files after a clean shutdown (WAL checkpointed),
  # indexes included, spool excluded.
  kill -TERM $pid; wait $pid 2>/dev/null || true
  store_bytes=$(find "$data/store" -type f -name '*.db*' ! -name 'catalog.db*' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  echo "store_disk=$((store_bytes / 1048576))MiB ($((store_bytes / ${now%.*})) bytes per stored message)" >&2
fi
python3 - "$sent" "${now%.*}" "$start" "$end" "$hwm" "${dedup:-0}" "$transport" "${rate:-max}" "${pg0:-}" "${pg1:-}" <<'PY'
import os, sys
sent, stored, start, end, hwm, dedup, tr, rate, pg0, pg1 = sys.argv[1:]
sent, stored, el = int(sent), int(stored), float(sys.argv[4]) - float(sys.argv[3])
print(f"transport={tr} rate={rate} sent={sent} stored={stored} dedup={dedup} elapsed={el:.1f}s "
      f"stored_per_s={stored/el:,.0f} loss={(sent-stored)/sent*100:.3f}% peak_rss={int(hwm)/1024:.0f}MiB")
if pg0 and pg1:
    cpu = (int(pg1) - int(pg0)) / os.sysconf("SC_CLK_TCK")
    server = "clickhouse" if os.environ.get("HEPSTACK_BENCH_STORE", "").startswith("clickhouse") else "postgres"
    print(f"{server}_cpu={cpu:.1f}s ({cpu / max(stored, 1) * 1e6:.1f} µs per row)")
PY
