#!/usr/bin/env bash
# Relay benchmark: `hepstack send` → UDP → `hepstack relay` (one rule balancing over 3 UDP
# destinations by consistent hashing of the Call-ID / correlation id) → 3 counting UDP sinks.
# Prints packets sent, received by the relay, delivered to the sinks, the share per sink, loss,
# the achieved rate and the relay's CPU time and peak RSS.
#
#   scripts/bench-relay.sh 3000000 300000     # N packets at R packets/s
set -euo pipefail
count=${1:-3000000}; rate=${2:-300000}
: "${CARGO_TARGET_DIR:=$HOME/.cache/hepstack-target}"
rel=$CARGO_TARGET_DIR/release
if [ -z "${HEPSTACK_BENCH_NO_BUILD:-}" ]; then
  cargo build --release -q -p hepstack
  cargo build --release -q -p relay --example udp_sinks
fi
work=$(mktemp -d /tmp/hepstack-relay-bench.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$rel/examples/udp_sinks" 3 3 >"$work/sinks.out" &
pids+=($!)
for _ in $(seq 100); do [ "$(grep -c '^sink ' "$work/sinks.out")" = 3 ] && break; sleep 0.05; done
mapfile -t sinks < <(sed -n 's/^sink //p' "$work/sinks.out")
cat >"$work/relay.toml" <<TOML
metrics_listen = "127.0.0.1:0"
[udp]
addresses = ["127.0.0.1:0"]
receive_buffer_bytes = 67108864
[destinations.c1]
url = "udp://${sinks[0]}"
[destinations.c2]
url = "udp://${sinks[1]}"
[destinations.c3]
url = "udp://${sinks[2]}"
[groups.pool]
members = ["c1", "c2", "c3"]
[[rules]]
name = "all"
balance = "pool"
TOML
"$rel/hepstack" relay --config "$work/relay.toml" 2>"$work/relay.log" &
relay=$!
pids+=($relay)
for _ in $(seq 100); do grep -q 'listening hep-udp' "$work/relay.log" && break; sleep 0.05; done
udp=$(sed -n 's/.*listening hep-udp //p' "$work/relay.log" | head -1)
metrics=$(sed -n 's/.*listening metrics //p' "$work/relay.log" | head -1)
start=$(date +%s.%N)
"$rel/hepstack" send --to "udp://$udp" --count "$count" --rate "$rate" --seed 1 --json >"$work/send.json"
send_end=$(date +%s.%N)
wait "${pids[0]}" || true   # the sinks exit 3 s after the traffic stops
python3 - "$work" "$count" "$start" "$send_end" "$relay" "$metrics" <<'PY'
import json, re, sys, urllib.request
work, count, start, send_end, relay, metrics = sys.argv[1:]
sent = json.load(open(f"{work}/send.json"))["messages"]
out = open(f"{work}/sinks.out").read()
total = int(re.search(r"^total (\d+)", out, re.M).group(1))
shares = [int(x) for x in re.findall(r"^sink\d+ (\d+)", out, re.M)]
text = urllib.request.urlopen(f"http://{metrics}/metrics").read().decode()
recv = sum(float(v) for v in re.findall(r'^hepstack_relay_received_total\{[^}]*\} (\S+)', text, re.M))
stat = open(f"/proc/{relay}/stat").read().split(")")[1].split()
cpu = (int(stat[11]) + int(stat[12])) / 100
hwm = next(l.split()[1] for l in open(f"/proc/{relay}/status") if l.startswith("VmHWM"))
el = float(send_end) - float(start)
print(f"sent={sent} relay_received={recv:.0f} delivered={total} shares={shares} "
      f"loss={(sent - total) / sent * 100:.3f}% send_rate={sent / el:,.0f}/s "
      f"relay_cpu={cpu:.1f}s ({sent / max(cpu, 0.01):,.0f} pkt per CPU-s) relay_peak_rss={int(hwm) / 1024:.0f}MiB")
PY
