#!/usr/bin/env bash
# Contract tests: checks the running local stack against openapi.yaml
# (tests/contract: hand-written journeys and error cases validated against the
# description, then schemathesis with a fixed budget and seed).
#
# Starts nothing: the stack must already answer at CONTRACT_BASE_URL
# (default http://127.0.0.1:3000), e.g. under `make dev`. Extra arguments go
# to pytest (e.g. `-k journey`, `-x`). Exits with pytest's status.
#
#   CONTRACT_BASE_URL      the API (default http://127.0.0.1:3000)
#   CONTRACT_DEMO_URL      the local stack's demo frontend, whose sign-in mints
#                          the test users' tokens (default http://localhost:3002)
#   CONTRACT_MAX_EXAMPLES  schemathesis examples per operation (default 50)
#   CONTRACT_SEED          schemathesis seed (default 20261125)
#   CONTRACT_FRONTEND_URL  the stack's first FRONTEND_URLS entry (default
#                          $CONTRACT_DEMO_URL/connected, the local stack's)
#   CONTRACT_JWT_SECRET    the stack's LOCAL_JWT_SECRET, for one test that signs
#                          its own token (default local-dev-secret)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

export CONTRACT_BASE_URL=${CONTRACT_BASE_URL:-http://127.0.0.1:3000}
REQUIREMENTS="$ROOT/tests/contract/requirements.txt"

ensure_moto
if ! "$VENV/bin/python" - "$REQUIREMENTS" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, pinned = line.split("==")
        if version(name) != pinned:
            sys.exit(1)
EOF
  say "Installing the contract test tools into .venv (schemathesis, pytest, jsonschema; pinned in tests/contract/requirements.txt)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS" \
    || fail "pip could not install tests/contract/requirements.txt"
fi

# INSTALL_ONLY=1: install the tools and stop (make test does that while it compiles).
[ "${INSTALL_ONLY:-}" = 1 ] && exit 0

"$VENV/bin/python" - "$CONTRACT_BASE_URL" <<'EOF' || fail "no API answers at $CONTRACT_BASE_URL: start the stack first (make dev), or set CONTRACT_BASE_URL"
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/consents", timeout=10)
except urllib.error.HTTPError:
    pass  # any HTTP answer (401 here) means the API is up
except (urllib.error.URLError, OSError, ValueError):
    sys.exit(1)
EOF

say "Contract tests: $CONTRACT_BASE_URL against openapi.yaml (tests/contract)"
cd "$ROOT/tests/contract"
PYTHONDONTWRITEBYTECODE=1 exec "$VENV/bin/python" -m pytest "$@"
