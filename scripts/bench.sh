#!/usr/bin/env bash
# Benchmarks (benches/README.md): builds the release binaries, starts moto,
# the Finexer sandbox and the local stack on 127.0.0.1, measures package size,
# request overhead (criterion), init time, memory, round trips, throughput,
# webhook acknowledgement and reconciler throughput, writes benches/RESULTS.md, and stops everything it started on exit.
#
#   scripts/bench.sh            full run (about 8 minutes after the build)
#   scripts/bench.sh --quick    smoke run, fewer samples; writes
#                               target-release/bench/RESULTS-quick.md instead
#   scripts/bench.sh --no-build reuse the binaries already built
#   scripts/bench.sh --cold     only the cold-request part (the cold request
#                               over TLS, init against both hello-worlds,
#                               moto's share), building only what it needs;
#                               writes target-release/bench/RESULTS-cold.md
#
# Builds go to CARGO_TARGET_DIR=target-release (see the build step below).
#
# Only 127.0.0.1 is contacted. Ports (override with the variables):
# BENCH_MOTO_PORT=4577 (and the next port), BENCH_SANDBOX_PORT=3101, BENCH_LOCAL_PORT=3100,
# BENCH_LOCAL_SANDBOX_PORT=3102, BENCH_LOCAL_DEMO_PORT=3103 (the local stack's
# demo frontend, whose sign-in mints tokens), BENCH_TLS_PORT=0 (the cold-request
# part's TLS endpoints: this port and the next three; 0: any free ones). Every loop is bounded: fixed counts of
# starts and invocations, time limits on wrk and on every wait.
set -euo pipefail

QUICK=0
BUILD=1
COLD=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    --cold) COLD=1 ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

BENCH_MOTO_PORT=${BENCH_MOTO_PORT:-4577}
MOTO_PORT=$BENCH_MOTO_PORT
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SANDBOX_PORT=${BENCH_SANDBOX_PORT:-3101}
LOCAL_PORT=${BENCH_LOCAL_PORT:-3100}
LOCAL_SANDBOX_PORT=${BENCH_LOCAL_SANDBOX_PORT:-3102}
LOCAL_DEMO_PORT=${BENCH_LOCAL_DEMO_PORT:-3103}

export CARGO_TARGET_DIR="$ROOT/target-release"
# The Lambda binaries (the four functions and the hello-world reference) are
# built by `cargo lambda build --release`, exactly as they are deployed (it
# adds --target x86_64-unknown-linux-gnu, -C target-cpu=haswell and zig as the
# linker). The tools that only run here (sandbox, local stack, harness,
# overhead benchmark) are built by plain cargo with the same target and flags:
# so every build shares the packaging build's compiled dependencies instead
# of overwriting them (a build without --target would rebuild the host
# artifacts that cargo-lambda's builds keep in target-release/release).
TARGET=x86_64-unknown-linux-gnu
TOOL_FLAGS=(--target "$TARGET" --config 'build.rustflags=["-C", "target-cpu=haswell"]' --release)
BIN="$CARGO_TARGET_DIR/$TARGET/release"
# BENCH_TOOLS_DIR: the harness, sandbox and local stack from another build
# (with --no-build; e.g. target/debug, when a release build of them is too dear).
TOOLS="${BENCH_TOOLS_DIR:-$BIN}"
WORK="$CARGO_TARGET_DIR/bench"
SIZE="$WORK/size"
OUT="$ROOT/benches/RESULTS.md"
if [ "$QUICK" = 1 ]; then
  OUT="$WORK/RESULTS-quick.md"
  export BENCH_STARTS=${BENCH_STARTS:-5} BENCH_WARM=${BENCH_WARM:-50}
  export BENCH_LOAD_SECONDS=${BENCH_LOAD_SECONDS:-3} BENCH_OVERHEAD_SECONDS=${BENCH_OVERHEAD_SECONDS:-1}
  export BENCH_WEBHOOKS=${BENCH_WEBHOOKS:-50} BENCH_RECONCILE_RECORDS=${BENCH_RECONCILE_RECORDS:-200}
  export BENCH_INIT_RUNS=${BENCH_INIT_RUNS:-2} BENCH_INIT_STARTS=${BENCH_INIT_STARTS:-5}
fi
FUNCTIONS=(create-link callback revoke consents)
if [ "$COLD" = 1 ]; then
  OUT="$WORK/RESULTS-cold.md"
  FUNCTIONS=(create-link callback consents)
  # BENCH_SKIP=cold-init,cold-moto (with BENCH_COLD_FUNCTIONS=callback, say)
  # keeps only the cold request, for a quick look.
  export BENCH_SKIP=memory,init,roundtrips,webhooks,reconcile,load${BENCH_SKIP:+,$BENCH_SKIP}
fi

command -v cargo >/dev/null || fail "cargo is required (rustup.rs)"
command -v wrk >/dev/null || apt_install wrk
command -v wrk >/dev/null || fail "wrk is required for the throughput part and could not be installed"
command -v strip >/dev/null || fail "strip is required (apt-get install binutils)"
command -v curl >/dev/null || fail "curl is required (apt-get install curl)"
need_python
ensure_moto

for port in "$BENCH_MOTO_PORT" "$SANDBOX_PORT" "$LOCAL_PORT" "$LOCAL_SANDBOX_PORT" "$LOCAL_DEMO_PORT"; do
  port_free "$port" || fail "port $port is taken; stop what uses it or set the BENCH_*_PORT variables"
done


if [ "$BUILD" = 1 ]; then
  command -v cargo-lambda >/dev/null || ensure_cargo_lambda
  # One cargo invocation per kind of binary, so that cargo's feature
  # unification cannot leak the harness's dependencies into the functions or
  # into the hello-world: each is built as it would be on its own.
  say "Building the functions: ${FUNCTIONS[*]} (cargo lambda build --release --output-format zip)"
  PACKAGES=()
  for f in "${FUNCTIONS[@]}"; do PACKAGES+=(-p "$f"); done
  cargo lambda build --release --output-format zip "${PACKAGES[@]}"
  say "Building the hello-world references the same way (lambda_runtime only; multi-thread and current_thread)"
  cargo lambda build --release --output-format zip -p connect-benches --features hello \
    --bin bench-hello --bin bench-hello-current-thread
  say "Building the harness, the overhead benchmark, the sandbox and the local stack (cargo build, same flags)"
  export CARGO_TARGET_APPLIES_TO_HOST=false # as cargo-lambda sets it
  cargo build "${TOOL_FLAGS[@]}" --quiet -p connect-benches --features harness --bin connect-bench
  [ "$COLD" = 1 ] || cargo build "${TOOL_FLAGS[@]}" --quiet -p connect-benches --features overhead --bin bench-overhead
  cargo build "${TOOL_FLAGS[@]}" --quiet -p finexer-sandbox -p connect-local
  if [ "${BENCH_NO_PIE:-0}" = 1 ]; then
    say "Building create-link once more without PIE (-C relocation-model=static; measured, never shipped)"
    CARGO_TARGET_DIR="$ROOT/target-nopie" cargo build --target "$TARGET" --release --quiet \
      --config 'build.rustflags=["-C", "target-cpu=haswell", "-C", "relocation-model=static"]' -p create-link
  fi
fi
# BENCH_NO_PIE=1: the init part also starts that build (cargo build, not cargo lambda: the linker differs).
if [ "${BENCH_NO_PIE:-0}" = 1 ]; then
  export BENCH_NO_PIE_DIR="$ROOT/target-nopie/$TARGET/release"
  [ -x "$BENCH_NO_PIE_DIR/create-link" ] || fail "$BENCH_NO_PIE_DIR/create-link is missing; run without --no-build"
fi
for b in "${FUNCTIONS[@]}" bench-hello bench-hello-current-thread; do
  [ -x "$BIN/$b" ] || fail "$BIN/$b is missing; run without --no-build"
done
TOOL_BINS=(finexer-sandbox connect-local connect-bench)
[ "$COLD" = 1 ] || TOOL_BINS+=(bench-overhead)
for b in "${TOOL_BINS[@]}"; do
  [ -x "$TOOLS/$b" ] || fail "$TOOLS/$b is missing; run without --no-build"
done

mkdir -p "$WORK"
if [ "$COLD" = 0 ]; then
  rm -rf "$SIZE"
  mkdir -p "$SIZE"
  say "Package size: stripping and zipping each function as bootstrap"
  for b in bench-hello create-link callback revoke consents; do
    strip --strip-all -o "$SIZE/$b" "$BIN/$b"
    python3 - "$SIZE/$b" "$SIZE/$b.zip" <<'PY'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo("bootstrap", date_time=(2026, 1, 1, 0, 0, 0))
info.external_attr = 0o100755 << 16
info.compress_type = zipfile.ZIP_DEFLATED
with open(src, "rb") as f, zipfile.ZipFile(dst, "w") as z:
    z.writestr(info, f.read(), compresslevel=9)
PY
  done

  say "Request overhead: criterion benchmarks of every handler (bench-overhead)"
  CRITERION_HOME="$WORK/criterion" BENCH_OVERHEAD_JSON="$WORK/overhead.json" \
    "$TOOLS/bench-overhead" >"$WORK/overhead.log" 2>&1 \
    || { tail -n 30 "$WORK/overhead.log" >&2; fail "bench-overhead failed (log: $WORK/overhead.log)"; }
fi

PIDS=()
# Stops what this script started, by pid: SIGTERM, up to 5 s, then SIGKILL.
stop_pids() {
  local pid i
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    local alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "$@"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}
stop_all() {
  [ "${#PIDS[@]}" -gt 0 ] && stop_pids "${PIDS[@]}"
  PIDS=()
}
trap stop_all EXIT INT TERM

# Waits (at most 60 s) until the local stack answers: it serves only after it
# has created the table connect-local and the secrets connect-local/*.
wait_for_stack() {
  local i
  for ((i = 0; i < 120; i++)); do
    curl -fsS -o /dev/null -X POST -H 'content-type: application/json' \
      -d '{"user":"probe"}' "http://127.0.0.1:$LOCAL_DEMO_PORT/local/token" 2>/dev/null && return 0
    sleep 0.5
  done
  fail "the local stack on :$1 did not answer within 60 s (log: $WORK/local*.log)"
}

# Two moto instances, so that the thousands of items the functions' runs
# write do not slow the load test's moto. Both run as the tests run moto
# (scripts/moto_server.py): one request at a time, since moto's transactions
# are not isolated (plain moto_server answered concurrent transactions with
# 500 pages, the 503s of an earlier run).
LOAD_MOTO_PORT=$((BENCH_MOTO_PORT + 1))
port_free "$LOAD_MOTO_PORT" || fail "port $LOAD_MOTO_PORT is taken; set BENCH_MOTO_PORT"
say "Starting moto on 127.0.0.1:$BENCH_MOTO_PORT (functions) and :$LOAD_MOTO_PORT (local stack)"
"$VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$BENCH_MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
"$VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$LOAD_MOTO_PORT" >"$WORK/moto-load.log" 2>&1 &
PIDS+=($!)
wait_for_port "$BENCH_MOTO_PORT" 30 moto
wait_for_port "$LOAD_MOTO_PORT" 30 moto

# The local stack creates the table and the secret as the template defines
# them: once against the functions' moto (then stopped), and once for good.
say "Creating the table and the secret for the functions (a short-lived local stack)"
env -u FINEXER_BASE_URL LOCAL_ADDR="127.0.0.1:$LOCAL_PORT" SANDBOX_ADDR="127.0.0.1:$LOCAL_SANDBOX_PORT" \
  DEMO_ADDR="127.0.0.1:$LOCAL_DEMO_PORT" AWS_ENDPOINT_URL="http://127.0.0.1:$BENCH_MOTO_PORT" LOCAL_RECONCILE_SECONDS=0 RUST_LOG=warn \
  "$TOOLS/connect-local" >"$WORK/local-bootstrap.log" 2>&1 &
BOOT=$!
PIDS+=("$BOOT")
wait_for_stack "$LOCAL_PORT"
stop_pids "$BOOT"
KEEP=()
for pid in "${PIDS[@]}"; do [ "$pid" != "$BOOT" ] && KEEP+=("$pid"); done
PIDS=("${KEEP[@]}")
for ((i = 0; i < 50; i++)); do
  port_free "$LOCAL_PORT" && port_free "$LOCAL_SANDBOX_PORT" && port_free "$LOCAL_DEMO_PORT" && break
  sleep 0.1
done

# The periodic reconciler is off (LOCAL_RECONCILE_SECONDS=0): only the
# harness's reconciler round runs it, so nothing else moves the records.
# MAX_PENDING_LINKS=1000: the webhook and reconciler rounds' users hold 50
# pending links each, and the load test's users more.
say "Starting the local stack on 127.0.0.1:$LOCAL_PORT (its sandbox on :$LOCAL_SANDBOX_PORT, ${BENCH_LOAD_LATENCY_MS:-50} ms latency)"
env -u FINEXER_BASE_URL LOCAL_ADDR="127.0.0.1:$LOCAL_PORT" SANDBOX_ADDR="127.0.0.1:$LOCAL_SANDBOX_PORT" \
  DEMO_ADDR="127.0.0.1:$LOCAL_DEMO_PORT" AWS_ENDPOINT_URL="http://127.0.0.1:$LOAD_MOTO_PORT" \
  SANDBOX_LATENCY_MS="${BENCH_LOAD_LATENCY_MS:-50}" LOCAL_RECONCILE_SECONDS=0 RUST_LOG=warn \
  MAX_PENDING_LINKS=1000 \
  "$TOOLS/connect-local" >"$WORK/local.log" 2>&1 &
PIDS+=($!)
wait_for_stack "$LOCAL_PORT"

say "Starting the Finexer sandbox for the functions on 127.0.0.1:$SANDBOX_PORT (no added latency)"
SANDBOX_ADDR="127.0.0.1:$SANDBOX_PORT" SANDBOX_LATENCY_MS=0 RUST_LOG=warn \
  "$TOOLS/finexer-sandbox" >"$WORK/sandbox.log" 2>&1 &
PIDS+=($!)
wait_for_port "$SANDBOX_PORT" 30 "the Finexer sandbox"

COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ]; then
  COMMIT="$COMMIT with uncommitted changes"
fi

say "Init time, memory, round trips, throughput, webhooks and the reconciler (connect-bench)"
BENCH_BIN_DIR="$BIN" BENCH_SIZE_DIR="$SIZE" BENCH_WORK_DIR="$WORK" BENCH_OUT="$OUT" \
  BENCH_OVERHEAD_JSON="$WORK/overhead.json" BENCH_LAMBDA_DIR="$CARGO_TARGET_DIR/lambda" \
  BENCH_MOTO_URL="http://127.0.0.1:$BENCH_MOTO_PORT" BENCH_TLS_PORT="${BENCH_TLS_PORT:-0}" \
  BENCH_SANDBOX_URL="http://127.0.0.1:$SANDBOX_PORT" \
  BENCH_LOCAL_URL="http://127.0.0.1:$LOCAL_PORT" \
  BENCH_LOCAL_SANDBOX_URL="http://127.0.0.1:$LOCAL_SANDBOX_PORT" \
  BENCH_LOCAL_DEMO_URL="http://127.0.0.1:$LOCAL_DEMO_PORT" \
  BENCH_LOAD_LATENCY_MS="${BENCH_LOAD_LATENCY_MS:-50}" \
  BENCH_DATE="$(date -u '+%Y-%m-%d %H:%M')" \
  BENCH_RUSTC="$(rustc --version)" \
  BENCH_COMMIT="$COMMIT" \
  BENCH_COMMANDS="\`scripts/bench.sh $*\`: functions and hello-world built by \`CARGO_TARGET_DIR=target-release cargo lambda build --release --output-format zip\` ($(cargo lambda --version 2>/dev/null || echo cargo-lambda)), tools by \`cargo build --target $TARGET --config 'build.rustflags=[\"-C\", \"target-cpu=haswell\"]' --release\`" \
  "$TOOLS/connect-bench"

say "Results: ${OUT#"$ROOT"/}"
