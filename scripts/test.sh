#!/usr/bin/env bash
# Runs every test: formatting and lints, then the workspace's tests against a
# moto emulator started here and stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null || fail "cargo is required (rustup.rs)"

say "Checking formatting (cargo fmt --check)"
cargo fmt --all -- --check

say "Linting (cargo clippy --all-targets -- -D warnings)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

trap stop_moto EXIT
start_moto

say "Running the workspace tests (unit, DynamoDB/Secrets Manager via moto, Finexer via wiremock and the sandbox)"
cargo test --workspace
