#!/usr/bin/env bash
# Runs every test: formatting and lints; the workspace's tests against a moto
# emulator; then the real local stack (moto + sandbox + every handler) driven
# by a headless browser from the demo frontend's own site, and by the contract
# tests at the API. Everything started here is stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null || fail "cargo is required (rustup.rs)"

# The stack under test listens apart from a `make dev` stack (3000-3002): the
# API, the sandbox, and the demo frontend (opened as http://localhost:<port>,
# another site than the API's 127.0.0.1).
TEST_ADDR=${TEST_ADDR:-127.0.0.1:3300}
TEST_SANDBOX_ADDR=${TEST_SANDBOX_ADDR:-127.0.0.1:3301}
TEST_DEMO_ADDR=${TEST_DEMO_ADDR:-127.0.0.1:3302}
STACK_PID=

stop_all() {
  if [ -n "$STACK_PID" ]; then
    kill "$STACK_PID" 2>/dev/null || true
    wait "$STACK_PID" 2>/dev/null || true
  fi
  stop_moto
}

say "Checking formatting (cargo fmt --check)"
cargo fmt --all -- --check

say "Linting (cargo clippy --all-targets -- -D warnings)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

say "Dependencies: licences, bans and sources (cargo-deny, deny.toml; advisories: scripts/deny.sh advisories)"
scripts/deny.sh

scripts/check-shipped.sh --self-test
scripts/check-shipped.sh
scripts/check-map.sh

# Before the stack starts: the demo frontend serves the kit's build.
scripts/web.sh test

trap stop_all EXIT
start_moto
"$VENV/bin/python" tests/emulator/check_moto_rollback.py "http://127.0.0.1:$MOTO_PORT"

say "Running the workspace tests (unit, DynamoDB/Secrets Manager via moto, Finexer via the sandbox)"
cargo test --workspace

TEST_API_URL="http://$TEST_ADDR"
TEST_DEMO_URL="http://localhost:${TEST_DEMO_ADDR##*:}"
say "Starting the local stack: API on $TEST_API_URL, demo on $TEST_DEMO_URL, sandbox on $TEST_SANDBOX_ADDR"
cargo build --quiet -p connect-local
for addr in "$TEST_ADDR" "$TEST_SANDBOX_ADDR" "$TEST_DEMO_ADDR"; do
  port_free "${addr##*:}" || fail "port ${addr##*:} is taken; set TEST_ADDR / TEST_SANDBOX_ADDR / TEST_DEMO_ADDR"
done
LOCAL_ADDR=$TEST_ADDR SANDBOX_ADDR=$TEST_SANDBOX_ADDR DEMO_ADDR=$TEST_DEMO_ADDR \
  CONSENT_TABLE=connect-test CONNECT_SECRET_ID=connect-test/secret \
  "${CARGO_TARGET_DIR:-$ROOT/target}/debug/connect-local" >"$ROOT/.local/stack.log" 2>&1 &
STACK_PID=$!
wait_for_port "${TEST_ADDR##*:}" 60 "the local stack's API (see .local/stack.log)"
wait_for_port "${TEST_DEMO_ADDR##*:}" 60 "the local stack's demo frontend (see .local/stack.log)"

say "Browser test: the journeys in headless Chromium, from the demo's site (on the web kit) to the API"
E2E_BASE_URL=$TEST_DEMO_URL E2E_API_URL=$TEST_API_URL E2E_DEMO_LOG="$ROOT/.local/stack.log" scripts/e2e.sh

say "Finexer contract check: our client against a fresh sandbox, which must show no difference"
scripts/finexer-check.sh --sandbox --webhook-secret --strict

say "Contract test: the running API against openapi.yaml (pytest + schemathesis)"
CONTRACT_BASE_URL=$TEST_API_URL CONTRACT_DEMO_URL=$TEST_DEMO_URL scripts/contract.sh

say "Deploy checks: cfn-lint, sam validate --lint, and the template against the code"
scripts/check-infra.sh

say "Release zips: cargo lambda build for every function (x86_64), checked and sized"
scripts/build-zips.sh

# The workspace tests ran local/tests/hostile_events.rs against debug builds;
# this runs it again against the release binaries just built (the deployed
# profile, panic strategy included), at no extra build cost.
say "Hostile events against the release binaries: one process per function answers them all"
HOSTILE_BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target-release}/x86_64-unknown-linux-gnu/release" \
  cargo test --workspace --test hostile_events
