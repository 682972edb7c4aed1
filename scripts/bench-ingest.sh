#!/usr/bin/env bash
# End-to-end ingest benchmark: a release `hepstack serve` with the embedded store, fed by
# `hepstack send` with synthetic SIP over TCP (as fast as it goes) or UDP (at a fixed rate).
# Prints messages sent, stored, elapsed, stored/s, loss and peak RSS of the server.
#
#   scripts/bench-ingest.sh tcp 1000000          # N messages over TCP, unpaced
#   scripts/bench-ingest.sh udp 3000000 50000    # N messages over UDP at R msg/s
set -euo pipefail
transport=${1:-tcp}; count=${2:-1000000}; rate=${3:-}
: "${CARGO_TARGET_DIR:=$HOME/.cache/hepstack-target}"
bin=$CARGO_TARGET_DIR/release/hepstack
[ -n "${HEPSTACK_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p hepstack
data=$(mktemp -d /tmp/hepstack-bench.XXXXXX)
log=$data/serve.log
HEPSTACK_ADMIN_PASSWORD=bench-password-1 "$bin" serve --data-dir "$data" --hep-udp 127.0.0.1:0 \
  --hep-tcp 127.0.0.1:0 --http 127.0.0.1:0 --metrics 127.0.0.1:0 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do grep -q '^hepstack: ready' "$log" && break; sleep 0.1; done
addr() { sed -n "s/^hepstack: listening $1 //p" "$log" | head -1; }
metrics=$(addr metrics)
stored() { curl -s "http://$metrics/metrics" | awk '/^hepstack_packets_stored_total /{print $2}'; }
args=(--to "$transport://$(addr hep-$transport)" --count "$count" --seed 1 --no-logs --json)
[ -n "$rate" ] && args+=(--rate "$rate")
start=$(date +%s.%N)
"$bin" send "${args[@]}" >"$data/send.json"
sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"])' "$data/send.json")
last=-1; now=0
while :; do
  now=$(stored); now=${now:-0}
  [ "${now%.*}" -ge "$sent" ] && break
  [ "$now" = "$last" ] && break   # no progress for a second: what is left was lost
  last=$now; sleep 1
done
end=$(date +%s.%N)
dedup=$(curl -s "http://$metrics/metrics" | awk '/^hepstack_packets_deduplicated_total /{print $2}')
hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
python3 - "$sent" "${now%.*}" "$start" "$end" "$hwm" "${dedup:-0}" "$transport" "${rate:-max}" <<'PY'
import sys
sent, stored, start, end, hwm, dedup, tr, rate = sys.argv[1:]
sent, stored, el = int(sent), int(stored), float(sys.argv[4]) - float(sys.argv[3])
print(f"transport={tr} rate={rate} sent={sent} stored={stored} dedup={dedup} elapsed={el:.1f}s "
      f"stored_per_s={stored/el:,.0f} loss={(sent-stored)/sent*100:.3f}% peak_rss={int(hwm)/1024:.0f}MiB")
PY
