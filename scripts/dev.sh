#!/usr/bin/env bash
# Runs the whole system on this machine: moto (DynamoDB + Secrets Manager),
# the Finexer sandbox, every function behind the API's routes, and the demo
# frontend on another site than the API (http://localhost:3002 calls
# http://127.0.0.1:3000 cross-site, as a platform's frontend calls the
# deployed API). Ctrl-C stops everything.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null || fail "cargo is required (rustup.rs)"
ensure_moto

# The demo frontend runs on the web kit's build (clients/web/dist).
scripts/web.sh build

say "Building the local stack (cargo build -p connect-local)"
cargo build --quiet -p connect-local

API_ADDR=${LOCAL_ADDR:-127.0.0.1:3000}
DEMO=${DEMO_ADDR:-127.0.0.1:3002}
check_free() { # variable address what
  port_free "${2##*:}" || fail "port ${2##*:} ($3) is taken; stop what uses it or set $1 to another host:port"
}
check_free LOCAL_ADDR "$API_ADDR" "the API"
check_free DEMO_ADDR "$DEMO" "the demo frontend"
[ -n "${FINEXER_BASE_URL:-}" ] || check_free SANDBOX_ADDR "${SANDBOX_ADDR:-127.0.0.1:3001}" "the Finexer sandbox"

trap stop_moto EXIT INT TERM
start_moto

say "Starting the API (http://$API_ADDR), the Finexer sandbox and the demo frontend (http://localhost:${DEMO##*:}/)"
"${CARGO_TARGET_DIR:-$ROOT/target}/debug/connect-local"
