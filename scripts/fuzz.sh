#!/usr/bin/env bash
# Bounded cargo-fuzz runs of every target in fuzz/ (issue 5): FUZZ_SECONDS
# each (default 20), then executions and crashes per target. Exits non-zero
# if any target crashed; the crashing input is left in fuzz/artifacts/<target>/
# and `cargo fuzz run <target> <file>` replays it.
#
#   scripts/fuzz.sh                      # every target, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh     # a longer run
#   scripts/fuzz.sh state_verify         # some targets only
#
# cargo fuzz needs nightly flags; on the stable toolchain RUSTC_BOOTSTRAP=1
# lets it use them. The first build instruments the whole dependency tree and
# takes long (about 45 minutes on a busy 2-core machine); later runs reuse
# fuzz/target and start fuzzing within a minute or two.
# The corpus grows in fuzz/corpus/<target>/ (not committed), seeded from
# fuzz/seeds/<target>/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SECONDS_EACH=${FUZZ_SECONDS:-20}
SANITIZER=${FUZZ_SANITIZER:-address}
ALL_TARGETS=(callback_query state_verify create_link_body finexer_consent)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")

command -v cargo >/dev/null || fail "cargo is required (rustup.rs)"
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "Installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet || fail "cargo install cargo-fuzz failed"
fi
export RUSTC_BOOTSTRAP=1

say "Building the fuzz targets (sanitizer: $SANITIZER)"
build_args=()
[ ${#TARGETS[@]} -ne 1 ] || build_args=("${TARGETS[0]}")
cargo fuzz build --sanitizer "$SANITIZER" "${build_args[@]}" >fuzz/build.log 2>&1 \
  || { tail -n 30 fuzz/build.log >&2; fail "cargo fuzz build failed (full log: fuzz/build.log)"; }

dict_of() {
  case "$1" in
    callback_query) echo fuzz/dicts/callback_query.dict ;;
    state_verify) echo fuzz/dicts/state_verify.dict ;;
    *) echo fuzz/dicts/json.dict ;;
  esac
}

crashed=0
summary=()
for target in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  log="fuzz/artifacts/$target/last-run.log"
  say "Fuzzing $target for ${SECONDS_EACH}s"
  before=$(find "fuzz/artifacts/$target" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  status=0
  cargo fuzz run --sanitizer "$SANITIZER" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    -dict="$(dict_of "$target")" >"$log" 2>&1 || status=$?
  after=$(find "fuzz/artifacts/$target" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  execs=$(grep -o 'stat::number_of_executed_units:[[:space:]]*[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
  speed=$(grep -o 'stat::average_exec_per_sec:[[:space:]]*[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
  corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
  crashes=$((after - before))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    # libFuzzer stopped without leaving an artifact: count it, show why.
    crashes=1
  fi
  if [ "$crashes" -gt 0 ]; then
    crashed=1
    grep -m 5 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" >&2 || tail -n 20 "$log" >&2
    echo "  artifacts: fuzz/artifacts/$target/ (log: $log)" >&2
  fi
  summary+=("$(printf '%-18s executions %10s  exec/s %7s  corpus %6s  crashes %s' \
    "$target" "${execs:-?}" "${speed:-?}" "$corpus" "$crashes")")
done

say "Fuzzing summary (${SECONDS_EACH}s per target)"
printf '%s\n' "${summary[@]}"
[ "$crashed" -eq 0 ] || fail "a fuzz target crashed; see the artifacts above"
