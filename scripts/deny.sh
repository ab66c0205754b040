#!/usr/bin/env bash
# cargo-deny over both workspaces (the main one and fuzz/), with deny.toml.
#
#   scripts/deny.sh              bans, licences, sources: offline once the
#                                crates are fetched (make test runs this)
#   scripts/deny.sh advisories   RustSec advisories: needs the network (it
#                                clones the advisory database from GitHub)
#   scripts/deny.sh all          everything
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

checks=("$@")
[ "${#checks[@]}" -gt 0 ] || checks=(bans licenses sources)
offline=(--offline)
for check in "${checks[@]}"; do
  case "$check" in
    bans | licenses | sources) ;;
    advisories | all) offline=() ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) fail "unknown check $check (bans, licenses, sources, advisories, all)" ;;
  esac
done

command -v cargo >/dev/null || fail "cargo is required (rustup.rs)"
ensure_cargo_deny
for manifest in Cargo.toml fuzz/Cargo.toml; do
  say "cargo-deny check ${checks[*]} (${manifest})"
  # The licence check reads every locked crate, also those of other
  # platforms: fetch them (a no-op, and offline, once they are here).
  cargo fetch --locked --quiet --manifest-path "$manifest"
  # deny.toml's one licence exception is for fuzz/'s libfuzzer-sys: not
  # meeting it in the main workspace is expected.
  "$CARGO_DENY" "${offline[@]}" --manifest-path "$manifest" \
    check -A license-exception-not-encountered "${checks[@]}"
done
