#!/usr/bin/env bash
# The hepstack test suite.
#
#   scripts/test.sh          the whole suite, what CI runs (.ci/run): installs what the tests need
#                            (Debian packages, cargo-fuzz), makes sure PostgreSQL runs, then
#                            rustfmt and clippy (gates), every test with the real peers required,
#                            doc tests, and a short run of every fuzz target.
#   scripts/test.sh quick    the inner loop: rustfmt, clippy -D warnings, unit and integration
#                            tests; installs only compilers, jq and tshark when missing, leaves
#                            out the tests that drive peers or a browser, and does not fuzz.
#
# Every stage runs even when an earlier one failed, and every test binary runs even when another
# failed (`cargo test --no-fail-fast`); the summary at the end names each failed stage, test
# binary and test, and the exit status is non-zero when anything failed. The last two lines are
# `test.sh <mode>: N passed, N failed, N ignored (tests); N stages passed, N failed` and
# `tests: N passed, N failed, N skipped`.
#
# Environment:
#   HEPSTACK_SAMPLES        where the sample material lives (default: ../shared/samples)
#   CARGO_TARGET_DIR        shared build dir (default: $HOME/.cache/hepstack-target)
#   HEPSTACK_FUZZ_SECONDS   seconds per fuzz target (default 10; 0 skips fuzzing)
#
# Adding a stage: write a `stage_<name>` function that returns non-zero on failure, and list it
# with `run_stage` in `main` at the bottom (full, quick, or both).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hepstack-target}"
export HEPSTACK_SAMPLES="${HEPSTACK_SAMPLES:-$root/../shared/samples}"
fuzz_seconds="${HEPSTACK_FUZZ_SECONDS:-10}"
mode="${1:-full}"
case "$mode" in
  full | quick) ;;
  -h | --help | help)
    sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [full|quick]" >&2
    exit 2
    ;;
esac

# Test binaries that drive real peers (Kamailio, SIPp, sngrep, Prometheus) or a headless browser:
# quick mode leaves them out. Tests in other binaries that need a peer skip loudly without one.
peer_test_binaries=(interop browser prometheus)
# Single peer tests inside otherwise quick binaries, left out of quick mode by name.
peer_test_names=(kamailio_siptrace_through_the_relay_into_serve)

# Every command's output also goes to one log per stage, so the summary can count and name failures.
logs="$(mktemp -d "${TMPDIR:-/tmp}/hepstack-test.XXXXXX")"
trap 'rm -rf "$logs"' EXIT

log() { printf '\n==> %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

stages_passed=()
stages_failed=()

# run_stage NAME FUNCTION [ARGS...]: runs one stage, records its outcome, never stops the script.
run_stage() {
  local name="$1"
  shift
  local started=$SECONDS
  log "stage $name"
  # The stage's output goes to its log and is followed from there: a server a test leaves
  # running in the background with the stage's output open cannot hold the script up, as it
  # would with a pipe to tee (tail stops when the stage's own process ends).
  local status
  "$@" >"$logs/$name.log" 2>&1 &
  local pid=$!
  tail -n +1 -f --pid="$pid" "$logs/$name.log"
  wait "$pid"
  status=$?
  if [ "$status" -eq 0 ]; then
    stages_passed+=("$name ($((SECONDS - started))s)")
  else
    stages_failed+=("$name ($((SECONDS - started))s)")
    echo "!!! stage $name FAILED" >&2
  fi
}

# --- setup (full mode) -------------------------------------------------------------------------

# Debian packages, each checked first so a prepared machine pays nothing. `base` is what quick
# mode needs too (compilers, jq for the test list, tshark: the agent's tests count packets with
# it as an independent oracle); `all` adds the peers, the browser and the database server.
stage_packages() {
  local need=()
  command -v cc >/dev/null || need+=(gcc)
  # libFuzzer (built by the fuzz stage through libfuzzer-sys) is C++.
  if [ "$mode" = full ] && [ "$fuzz_seconds" -gt 0 ]; then command -v c++ >/dev/null || need+=(g++); fi
  command -v pkg-config >/dev/null || need+=(pkg-config)
  command -v jq >/dev/null || need+=(jq)
  command -v curl >/dev/null || need+=(curl)
  command -v tshark >/dev/null || need+=(tshark)
  if [ "$mode" = full ]; then
    command -v pg_ctlcluster >/dev/null || need+=(postgresql)
    command -v psql >/dev/null || need+=(postgresql-client)
    # Interoperability peers (crates/hepstack/tests/interop.rs); Debian's SIPp package is sip-tester.
    command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || need+=(kamailio)
    command -v sipp >/dev/null || need+=(sip-tester)
    command -v sngrep >/dev/null || need+=(sngrep)
    # rtpengine behind Kamailio in crates/hepstack/tests/peers.rs: the userspace daemon only (the
    # `rtpengine` metapackage also pulls the kernel module's DKMS build, which the tests do not use:
    # they run it with --table=-1).
    command -v rtpengine >/dev/null || need+=(rtpengine-daemon)
    # heplify (../shared/peers/heplify, a Go binary) in peers.rs links LuaJIT and libpcap.
    ls /usr/lib/*/libluajit-5.1.so.2 >/dev/null 2>&1 || need+=(libluajit-5.1-2)
    # The headless browser for the web UI end-to-end tests (crates/hepstack/tests/browser.rs).
    command -v chromium >/dev/null || need+=(chromium)
    command -v chromedriver >/dev/null || need+=(chromium-driver)
    # A real Prometheus scraping hepstack (KPI tests).
    command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || need+=(prometheus)
    # libpcap for live capture: loaded at run time by `hepstack capture -i`, never needed to build.
    [ -e /usr/lib/x86_64-linux-gnu/libpcap.so.0.8 ] || ls /usr/lib/*/libpcap.so.0.8 >/dev/null 2>&1 || need+=(libpcap0.8)
  fi
  if [ "${#need[@]}" -eq 0 ]; then
    echo "every Debian package the $mode run uses is installed"
    return 0
  fi
  echo "installing Debian packages: ${need[*]}"
  as_root apt-get update -qq || return 1
  # tshark's package asks whether non-root users may capture; answer for it.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | as_root debconf-set-selections 2>/dev/null || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

# Tests that need a database create their own; here we only make sure a server answers.
stage_postgres() {
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    echo "starting PostgreSQL"
    local v
    for v in $(ls /etc/postgresql 2>/dev/null); do
      as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 1; done
  fi
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    echo "PostgreSQL answers on 127.0.0.1:5432"
  else
    echo "no PostgreSQL on 127.0.0.1:5432: the database tests will fail" >&2
    return 1
  fi
}

# ClickHouse: single node + 2x2 cluster + ZooKeeper for the ClickHouse store's tests.
stage_clickhouse() { "$root/scripts/clickhouse.sh"; }

stage_samples() {
  if [ -f "$HEPSTACK_SAMPLES/README.md" ]; then
    echo "samples: $HEPSTACK_SAMPLES"
  else
    echo "sample material not found at $HEPSTACK_SAMPLES (set HEPSTACK_SAMPLES)" >&2
    return 1
  fi
}

# --- gates ---------------------------------------------------------------------------------------

stage_fmt() { cargo fmt --all -- --check; }

stage_clippy() { cargo clippy --workspace --all-targets --locked -- -D warnings; }

# --- tests ---------------------------------------------------------------------------------------

# Every test of every crate; the interoperability tests fail instead of skipping when a peer is
# missing.
stage_test() {
  HEPSTACK_REQUIRE_PEERS=1 cargo test --workspace --all-targets --locked --no-fail-fast
}

stage_doc() { cargo test --workspace --doc --locked --no-fail-fast; }

# Unit tests, examples and every integration test binary except the peer and browser ones.
stage_test_quick() {
  local args=(--lib --bins --examples) name skip
  for name in $(cargo metadata --no-deps --format-version 1 --locked |
    jq -r '[.packages[].targets[] | select(.kind | index("test")) | .name] | unique | .[]'); do
    skip=0
    for peer in "${peer_test_binaries[@]}"; do [ "$name" = "$peer" ] && skip=1; done
    [ "$skip" = 1 ] || args+=(--test "$name")
  done
  local filters=()
  for name in "${peer_test_names[@]}"; do filters+=(--skip "$name"); done
  echo "left out: test binaries ${peer_test_binaries[*]}; tests ${peer_test_names[*]}"
  cargo test --workspace "${args[@]}" --locked --no-fail-fast -- "${filters[@]}"
}

# The Debian package end to end on this machine: build it (from the binary the test stage built:
# packaging, not optimisation, is under test), dpkg -i, start the unit's command line as its
# user (systemd does not run in CI containers), send traffic, query it through the API with the
# generated admin password, then purge and check that the user and the data are gone.
stage_deb() {
  local bin="$CARGO_TARGET_DIR/debug/hepstack" deb pid status env_file=/etc/hepstack/hepstack.env
  [ -x "$bin" ] || cargo build --locked -p hepstack || return 1
  deb="$(scripts/deb.sh "$bin" "$logs/deb")" || return 1
  as_root dpkg -i "$deb" || return 1
  (
    set -e
    id hepstack
    [ "$(stat -c %a "$env_file")" = 600 ] || { echo "$env_file is not 0600"; exit 1; }
    exec_start="$(sed -n 's/^ExecStart=//p' /lib/systemd/system/hepstack.service)"
    # The unit's command line and environment, on loopback ports of its own.
    as_root env $(as_root cat "$env_file") HEPSTACK_HEP_UDP=127.0.0.1:19160 HEPSTACK_HEP_TCP=off \
      HEPSTACK_HTTP=127.0.0.1:19180 HEPSTACK_METRICS=127.0.0.1:19196 \
      runuser -u hepstack -- $exec_start >"$logs/deb-serve.out" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do grep -qs 'hepstack: ready' "$logs/deb-serve.out" && break; sleep 0.2; done
    grep -q 'hepstack: ready' "$logs/deb-serve.out" || { cat "$logs/deb-serve.out"; exit 1; }
    # Every scenario (call, registration, OPTIONS) is one Call-ID: the calls the API must list.
    sent="$(/usr/bin/hepstack send --to udp://127.0.0.1:19160 --calls 10 --rate 500 --seed 3 |
      sed -n 's/^scenarios://p' | grep -o '[0-9][0-9]*' | awk '{ n += $1 } END { print n }')"
    password="$(as_root sed -n 's/^HEPSTACK_ADMIN_PASSWORD=//p' "$env_file")"
    token="$(curl -sf 127.0.0.1:19180/api/v1/login -H 'content-type: application/json' \
      -d "{\"username\":\"admin\",\"password\":\"$password\"}" | jq -r .token)"
    total=0
    for _ in $(seq 1 50); do
      total="$(curl -sf -H "Authorization: Bearer $token" \
        '127.0.0.1:19180/api/v1/calls?from=0&to=4102444800000&limit=1' | jq -r .total)"
      [ "$total" = 10 ] && break
      sleep 0.2
    done
    echo "Call-IDs sent: $sent, calls found through the packaged hepstack's API: $total"
    as_root kill -TERM "$(pgrep -u hepstack -f "hepstack serve" | head -n 1)"
    wait "$pid" || true
    [ "$total" = "$sent" ] || { tail -n 20 "$logs/deb-serve.out"; exit 1; }
    as_root test -n "$(ls /var/lib/hepstack/store)"
  )
  status=$?
  as_root dpkg --purge hepstack || status=1
  if id hepstack >/dev/null 2>&1 || [ -e /var/lib/hepstack ] || [ -e "$env_file" ]; then
    echo "purge left the user, /var/lib/hepstack or $env_file behind"
    status=1
  fi
  return "$status"
}

# --- fuzzing -------------------------------------------------------------------------------------

# cargo-fuzz needs nightly-only flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them, so
# the fuzz targets run here with libFuzzer and AddressSanitizer for a short, bounded time. Every
# target runs even when one finds a crash.
stage_fuzz() {
  if ! command -v c++ >/dev/null; then
    echo "the fuzz stage needs a C++ compiler for libFuzzer: apt-get install g++" >&2
    return 1
  fi
  if ! command -v cargo-fuzz >/dev/null; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet || return 1
  fi
  local target status=0 out
  export RUSTC_BOOTSTRAP=1
  for target in $(cargo fuzz list --fuzz-dir fuzz); do
    out="$logs/fuzz-$target.out"
    if cargo fuzz run --fuzz-dir fuzz "$target" -- -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 >"$out" 2>&1; then
      echo "fuzz $target: ok ($(grep -o '#[0-9]* *DONE.*' "$out" | tail -n 1))"
    else
      echo "fuzz $target: FAILED"
      tail -n 40 "$out"
      status=1
    fi
  done
  return "$status"
}

# --- summary -------------------------------------------------------------------------------------

summary() {
  local passed=0 failed=0 ignored=0 p f i
  # cargo prints one `test result:` line per test binary.
  while read -r p f i; do
    passed=$((passed + p))
    failed=$((failed + f))
    ignored=$((ignored + i))
  done < <(cat "$logs"/*.log 2>/dev/null |
    sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p')

  log "summary"
  local s
  for s in "${stages_passed[@]}"; do echo "  ok      $s"; done
  for s in "${stages_failed[@]}"; do echo "  FAILED  $s"; done
  # cargo --no-fail-fast names the failed test binaries; the tests themselves print `... FAILED`.
  if cat "$logs"/*.log 2>/dev/null | grep -qE '^    `-p |^test .* \.\.\. FAILED$'; then
    echo "failed test binaries and tests:"
    cat "$logs"/*.log | grep -E '^    `-p |^test .* \.\.\. FAILED$' | sort -u | sed 's/^ */  /'
  fi
  printf 'test.sh %s: %d passed, %d failed, %d ignored (tests); %d stages passed, %d failed%s\n' \
    "$mode" "$passed" "$failed" "$ignored" "${#stages_passed[@]}" "${#stages_failed[@]}" \
    "$([ "${#stages_failed[@]}" -gt 0 ] && printf ': %s' "${stages_failed[*]}")"
  # The plain closing line CI runners read; a failed stage without a failed test (clippy, say)
  # still fails the run through the exit status.
  printf 'tests: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$ignored"
  [ "${#stages_failed[@]}" -eq 0 ]
}

main() {
  if [ "$mode" = full ]; then
    run_stage packages stage_packages
    run_stage postgres stage_postgres
    run_stage clickhouse stage_clickhouse
    run_stage samples stage_samples
    run_stage fmt stage_fmt
    run_stage clippy stage_clippy
    run_stage test stage_test
    run_stage doc stage_doc
    run_stage deb stage_deb
    if [ "$fuzz_seconds" -gt 0 ]; then run_stage fuzz stage_fuzz; fi
  else
    run_stage packages stage_packages
    run_stage samples stage_samples
    run_stage fmt stage_fmt
    run_stage clippy stage_clippy
    run_stage test stage_test_quick
  fi
  summary
}

main
