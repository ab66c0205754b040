#!/usr/bin/env bash
# Runs the whole system on this machine: moto (DynamoDB + Secrets Manager),
# the Finexer sandbox, every function behind the API's routes, and the demo
# page. Ctrl-C stops everything.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null || fail "cargo is required (rustup.rs)"
ensure_moto

say "Building the local stack (cargo build -p connect-local)"
cargo build --quiet -p connect-local

for port in "${LOCAL_ADDR:-127.0.0.1:3000}" "${SANDBOX_ADDR:-127.0.0.1:3001}"; do
  port_free "${port##*:}" || fail "port ${port##*:} is taken; stop what uses it or set LOCAL_ADDR / SANDBOX_ADDR"
done

trap stop_moto EXIT INT TERM
start_moto

say "Starting the API, the Finexer sandbox and the demo page"
"${CARGO_TARGET_DIR:-$ROOT/target}/debug/connect-local"
