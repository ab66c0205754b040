#!/usr/bin/env bash
# Browser test of the consent journey (e2e/journey.test.mjs) against a stack
# that is already running: the Acme Money demo frontend at E2E_BASE_URL
# (default http://localhost:3002), the API it calls cross-site at E2E_API_URL
# (default http://127.0.0.1:3000; another site, as in production), and the
# Finexer sandbox.
#
# Installs what it needs on a fresh Debian machine: Debian's chromium (never a
# browser download) and the test's npm packages (playwright-core). Screenshots
# of every page visited go to artifacts/screenshots/.
#
# INSTALL_ONLY=1 installs what the test needs and stops there (make test does
# that in the background while it compiles).
#
# Environment: E2E_BASE_URL (the demo), E2E_API_URL (the API), E2E_WAIT_SECONDS
# (how long to wait for the stack, default 60), E2E_CHROMIUM (default
# /usr/bin/chromium), E2E_DEMO_LOG (the stack's log, whose demo access log
# must hold no code; that check is skipped without it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

export E2E_BASE_URL=${E2E_BASE_URL:-http://localhost:3002}
export E2E_API_URL=${E2E_API_URL:-http://127.0.0.1:3000}
export E2E_CHROMIUM=${E2E_CHROMIUM:-/usr/bin/chromium}
WAIT_SECONDS=${E2E_WAIT_SECONDS:-60}
E2E_DIR="$ROOT/e2e"

# --- Browser: Debian's chromium --------------------------------------------
if [ ! -x "$E2E_CHROMIUM" ]; then
  apt_install chromium chromium-driver
  [ -x "$E2E_CHROMIUM" ] || fail "chromium was installed but $E2E_CHROMIUM is missing; set E2E_CHROMIUM"
fi

ensure_node
# playwright-core downloads nothing at install; PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD makes sure of it.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 ensure_npm_packages "$E2E_DIR" "the browser test's npm packages (playwright-core)"

[ "${INSTALL_ONLY:-}" = 1 ] && exit 0

# --- The stack -----------------------------------------------------------------
say "Waiting up to ${WAIT_SECONDS} s for the demo at $E2E_BASE_URL and the API at $E2E_API_URL"
# The demo's page answers 200; the API answers 401 to an unsigned GET /consents.
node -e '
  const [demo, api, seconds] = process.argv.slice(1);
  const deadline = Date.now() + Number(seconds) * 1000;
  async function up(url, expected) {
    let last = "no answer";
    while (Date.now() < deadline) {
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
        if (response.status === expected) return;
        last = `HTTP ${response.status}`;
      } catch (error) {
        last = error.cause?.code || error.message;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    console.error(`${url} did not answer ${expected} (${last})`);
    process.exit(1);
  }
  (async () => {
    await up(demo, 200);
    await up(`${api}/consents`, 401);
  })();
' "$E2E_BASE_URL" "$E2E_API_URL" "$WAIT_SECONDS" || fail "the stack is not running at $E2E_BASE_URL / $E2E_API_URL (start connect-local first)"

# --- The test ------------------------------------------------------------------
mkdir -p "$ROOT/artifacts/screenshots"
say "Running the browser test (node --test e2e/); screenshots in artifacts/screenshots/"
set +e
node --test --test-reporter=tap e2e/
status=$?
set -e
if [ "$status" = 0 ]; then
  say "Browser test passed"
else
  printf '\033[31merror:\033[0m browser test failed (exit %s); see artifacts/screenshots/*-failed.png\n' "$status" >&2
fi
exit "$status"
