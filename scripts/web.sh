#!/usr/bin/env bash
# The web kit, clients/web/ (@finexer-connect/web). `build`: installs its dev
# dependencies from the committed package-lock.json (npm ci) and builds dist/
# (esbuild, then tsc for the .d.ts files, which type-checks the source); the
# demo frontend serves that build, so `make dev` and `make test` run this
# before the stack starts. `test`: build, then its tests with Node's runner:
# the unit tests, the minified+gzipped size (at most 4 KB), what `npm pack`
# ships, and the generated types against openapi.yaml.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

WEB_DIR="$ROOT/clients/web"

build() {
  ensure_node
  ensure_npm_packages "$WEB_DIR" "the web kit's dev dependencies (typescript, esbuild, openapi-typescript)"
  say "Building the web kit (clients/web/dist: esbuild + tsc)"
  (cd "$WEB_DIR" && node scripts/build.mjs) || fail "the web kit did not build"
}

case "${1:-build}" in
  build)
    build
    ;;
  test)
    build
    say "Web kit tests (node --test): unit tests, size (<= 4 KB gzipped), npm pack contents, types against openapi.yaml"
    (cd "$WEB_DIR" && node --test --test-reporter=tap test/*.test.mjs)
    ;;
  *)
    fail "usage: scripts/web.sh [build|test]"
    ;;
esac
