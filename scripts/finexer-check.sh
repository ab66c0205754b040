#!/usr/bin/env bash
# The contract check: runs a consent journey against FINEXER_BASE_URL with our
# own Finexer client (list providers, create a customer, create a consent, read
# it back, list its accounts, revoke it, read it again) and reports every
# difference from docs/finexer-api.md, field by field. Run it against
# Finexer's sandbox with a sandbox key before the first deploy:
#
#   FINEXER_BASE_URL=https://api.finexer.com FINEXER_API_KEY=<sandbox key> scripts/finexer-check.sh
#
# Arguments go to the check (`--help` lists them all): --record DIR saves the
# answers redacted, --replay DIR checks a recording, --wait-for-approval SECS
# lets you approve the consent so accounts are checked too, --webhook-secret
# checks a delivered event's signature (secret in FINEXER_WEBHOOK_SECRET),
# --sandbox runs against a fresh copy of our sandbox (as `make test` does),
# --strict fails on notes too. The key is read from the environment and never
# printed. Exit status: 0 no difference that breaks a journey, 1 differences,
# 2 the check could not run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null || fail "cargo is required (rustup.rs)"
[ -n "${LOCAL_BIN_DIR:-}" ] || say "Building the check (cargo build -p connect-local --bin finexer-check)" >&2
check=$(local_bin finexer-check)
exec "$check" "$@"
