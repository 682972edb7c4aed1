#!/usr/bin/env bash
# The whole hepstack test suite, from a fresh Debian machine with only the Rust toolchain.
#
# It installs what the tests need (Debian packages, cargo tools), makes sure a PostgreSQL server
# runs on 127.0.0.1:5432, then runs every test: unit, property, integration (against the real
# samples in ../shared/samples), the CLI end-to-end tests, and a short run of every fuzz target.
#
# Environment:
#   HEPSTACK_SAMPLES        where the sample material lives (default: ../shared/samples)
#   CARGO_TARGET_DIR        shared build dir (default: $HOME/.cache/hepstack-target)
#   HEPSTACK_FUZZ_SECONDS   seconds per fuzz target (default 10; 0 skips fuzzing)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hepstack-target}"
export HEPSTACK_SAMPLES="${HEPSTACK_SAMPLES:-$root/../shared/samples}"
fuzz_seconds="${HEPSTACK_FUZZ_SECONDS:-10}"

log() { printf '\n==> %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages -------------------------------------------------------------------------
# Only what the tests use; each is checked first so a prepared machine pays nothing.
need_pkgs=()
command -v cc >/dev/null || need_pkgs+=(gcc)
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
command -v pg_ctlcluster >/dev/null || need_pkgs+=(postgresql)
command -v psql >/dev/null || need_pkgs+=(postgresql-client)
# Interoperability peers (crates/hepstack/tests/interop.rs); Debian's SIPp package is sip-tester.
command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || need_pkgs+=(kamailio)
command -v sipp >/dev/null || need_pkgs+=(sip-tester)
command -v sngrep >/dev/null || need_pkgs+=(sngrep)
# Independent packet counts for the capture agent (crates/agent tests).
command -v tshark >/dev/null || need_pkgs+=(tshark)
# The headless browser for the web UI end-to-end tests (crates/web/tests/browser.rs).
command -v chromium >/dev/null || need_pkgs+=(chromium)
command -v chromedriver >/dev/null || need_pkgs+=(chromium-driver)
# A real Prometheus scraping hepstack (KPI tests).
command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || need_pkgs+=(prometheus)
# libpcap for live capture: loaded at run time by `hepstack capture -i`, never needed to build.
[ -e /usr/lib/x86_64-linux-gnu/libpcap.so.0.8 ] || ls /usr/lib/*/libpcap.so.0.8 >/dev/null 2>&1 || need_pkgs+=(libpcap0.8)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  as_root apt-get update -qq
  # tshark's package asks whether non-root users may capture; answer for it.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | as_root debconf-set-selections 2>/dev/null || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# --- PostgreSQL --------------------------------------------------------------------------------
# Tests that need a database create their own; here we only make sure a server answers.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  log "starting PostgreSQL"
  for v in $(ls /etc/postgresql 2>/dev/null); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 1; done
fi
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "PostgreSQL answers on 127.0.0.1:5432"
else
  echo "WARNING: no PostgreSQL on 127.0.0.1:5432; database tests will start a throwaway cluster or fail loudly" >&2
fi

# --- ClickHouse (single node + 2x2 cluster + ZooKeeper for the ClickHouse store's tests) -------
"$root/scripts/clickhouse.sh"

# --- samples -------------------------------------------------------------------------------------
if [ ! -f "$HEPSTACK_SAMPLES/README.md" ]; then
  echo "ERROR: sample material not found at $HEPSTACK_SAMPLES (set HEPSTACK_SAMPLES)" >&2
  exit 1
fi

# --- tests ---------------------------------------------------------------------------------------
log "cargo test (workspace, all targets)"
# The interoperability tests fail instead of skipping when a peer binary is missing.
export HEPSTACK_REQUIRE_PEERS=1
cargo test --workspace --all-targets --locked
log "cargo test (doc tests)"
cargo test --workspace --doc --locked

# --- fuzzing -------------------------------------------------------------------------------------
# cargo-fuzz needs nightly-only flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them, so
# the fuzz targets run here with libFuzzer and AddressSanitizer for a short, bounded time.
if [ "$fuzz_seconds" -gt 0 ]; then
  if ! command -v cargo-fuzz >/dev/null; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
  fi
  log "fuzzing every target for ${fuzz_seconds}s"
  export RUSTC_BOOTSTRAP=1
  for target in $(cargo fuzz list --fuzz-dir fuzz); do
    echo "--- fuzz $target"
    cargo fuzz run --fuzz-dir fuzz "$target" -- -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 2>&1 | tail -n 3
  done
fi

log "all tests passed"
