#!/usr/bin/env bash
# What ships: fails if any Lambda binary (every workspace member under
# functions/, read from cargo metadata) links tooling. Its normal and build
# dependency tree must not contain a crate from FORBIDDEN, and it must not
# turn on connect-shared's `test-util` feature (MemoryStore, StaticSecrets,
# create_table, the benchmark transport, and the reconciler's `at` and
# `budget_ms`: without the feature a run cannot be given another clock or
# budget, whatever its payload says; local/tests/hostile_events.rs runs the
# `reconcile` binary with one to show it).
#
#   scripts/check-shipped.sh              check every function
#   scripts/check-shipped.sh --self-test  prove the check can fail: run it on
#                                         connect-local (axum, the sandbox,
#                                         test-util) and expect it to fail
#
# cargo tree over Cargo.lock: offline once the crates are fetched. make check
# and make test run both.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# Test and development crates: the local stack's server, our Finexer
# emulator, the HTTP mocks, the benchmark framework, the test kit.
FORBIDDEN=(axum finexer-sandbox wiremock criterion connect-testkit)
FORBIDDEN_FEATURE='connect-shared feature "test-util"'

command -v cargo >/dev/null || fail "cargo is required (rustup.rs)"
need_python

# The members whose manifest sits in functions/<name>/.
functions() {
  cargo metadata --format-version 1 --no-deps | python3 -c '
import json, pathlib, sys
meta = json.load(sys.stdin)
root = pathlib.Path(meta["workspace_root"])
for package in meta["packages"]:
    manifest = pathlib.Path(package["manifest_path"]).relative_to(root)
    if manifest.parts[0] == "functions":
        print(package["name"])
'
}

# Prints what the package ships that it must not; fails if there is any.
check_package() {
  local package=$1 crates features found=()
  crates=$(cargo tree -p "$package" -e normal,build --prefix none --format '{p}' | awk '{print $1}' | sort -u)
  for crate in "${FORBIDDEN[@]}"; do
    grep -qx -- "$crate" <<<"$crates" && found+=("$crate")
  done
  # Into a variable first: grep -q stopping early would fail cargo's pipe.
  features=$(cargo tree -p "$package" -e features --prefix none)
  grep -qF -- "$FORBIDDEN_FEATURE" <<<"$features" && found+=("connect-shared/test-util")
  if [ "${#found[@]}" -gt 0 ]; then
    printf '%s links %s\n' "$package" "${found[*]}" >&2
    return 1
  fi
}

if [ "${1:-}" = --self-test ]; then
  say "What ships, self-test: the check must reject connect-local, naming what it links"
  if verdict=$(check_package connect-local 2>&1); then
    fail "check-shipped passed connect-local, which links axum: the check cannot fail"
  fi
  for expected in axum finexer-sandbox connect-shared/test-util; do
    grep -qw -- "$expected" <<<"$verdict" || fail "check-shipped did not name $expected in connect-local: $verdict"
  done
  echo "rejected as expected: $verdict"
  exit 0
fi
[ $# -eq 0 ] || fail "unknown argument $1 (try --self-test)"

mapfile -t packages < <(functions)
[ "${#packages[@]}" -gt 0 ] || fail "cargo metadata lists no member under functions/"
say "What ships: ${#packages[@]} functions (${packages[*]}) link none of ${FORBIDDEN[*]}, nor shared's test-util (so no reconciler clock or budget from a payload)"
failed=0
for package in "${packages[@]}"; do
  check_package "$package" || failed=1
done
[ "$failed" = 0 ] || fail "a Lambda binary links test or development code (above); move the dependency to [dev-dependencies] or behind a feature the function does not enable"
