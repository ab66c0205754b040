#!/usr/bin/env bash
# Checks the deployment templates offline:
#   1. cfn-lint on every template in infra/ (no errors, no warnings),
#   2. `sam validate --lint` on each,
#   3. tests/infra/check_consistency.py: environment, IAM actions, routes
#      (the route table, printed by `cargo run -q -p connect-local --bin
#      routes`), table and secrets against the Rust code (each function's
#      role and configuration reading only the secrets its code reads), the
#      Cargo.toml deploy settings (workspace's, then each function's) against
#      the template (Fn::ForEach expanded), and the alarms, dashboard and
#      canary deploys (metric names against shared/src/metrics.rs) (with
#      negative checks).
# Exits non-zero on any failure. Needs cargo, python3 (3.11) and the PyPI registry
# the first time (the tools go into .venv-infra); nothing else is contacted.
set -uo pipefail

source "$(dirname "$0")/lib.sh"
cd "$ROOT"

VENV="$INFRA_VENV"
REQUIREMENTS="$ROOT/infra/requirements.txt"

# AWS tooling runs offline with lib.sh's fake credentials: never the instance
# metadata service, never a real account, no telemetry.
unset AWS_SESSION_TOKEN AWS_PROFILE
export SAM_CLI_TELEMETRY=0

failed=()

step "tools: $VENV from $REQUIREMENTS"
ensure_infra_tools
echo "cfn-lint $("$VENV/bin/cfn-lint" --version | awk '{print $2}'), $("$VENV/bin/sam" --version)"

mapfile -t templates < <(find infra -maxdepth 2 -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) \
  -exec grep -l -E '^(AWSTemplateFormatVersion|Resources):|"Resources"' {} + | sort)
if [ "${#templates[@]}" -eq 0 ]; then
  echo "FAIL: no template found in infra/"
  exit 1
fi

for template in "${templates[@]}"; do
  step "cfn-lint $template"
  if "$VENV/bin/cfn-lint" --format parseable -- "$template"; then
    echo "ok: no errors or warnings"
  else
    failed+=("cfn-lint $template")
  fi

  step "sam validate --lint --template $template (offline)"
  sam_home="$(mktemp -d)"
  if HOME="$sam_home" "$VENV/bin/sam" validate --lint --template "$template" --region "$AWS_REGION"; then
    :
  else
    failed+=("sam validate $template")
  fi
  rm -rf "$sam_home"
done

step "sam build's reading of $template (language extensions on, as infra/README.md deploys)"
# What `sam build` lists before it builds: every function, its crate and
# build method, with the Fn::ForEach loops expanded. Offline.
if ! HOME="$(mktemp -d)" "$VENV/bin/python" - infra/template.yaml "$(lambda_functions | wc -l)" <<'PY'
import sys
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

stacks, _ = SamLocalStackProvider.get_stacks(sys.argv[1], language_extensions_enabled=True)
functions = list(SamFunctionProvider(stacks, ignore_code_extraction_warnings=True).get_all())
for f in functions:
    print(f"{f.name}: {f.codeuri} ({(f.metadata or {}).get('BuildMethod')})")
loops = [k for k in stacks[0].resources if k.startswith("Fn::")]
if loops or len(functions) != int(sys.argv[2]) or any((f.metadata or {}).get("BuildMethod") != "rust-cargolambda" for f in functions):
    sys.exit(f"FAIL: {len(functions)} functions, loops left {loops}")
PY
then
  failed+=("sam build's reading")
fi

step "template against the code: tests/infra/check_consistency.py"
routes="$(mktemp)"
"$(local_bin routes)" >"$routes" || fail "the route table (connect-local's routes binary) could not be printed"
if ! "$VENV/bin/python" tests/infra/check_consistency.py --template infra/template.yaml --routes "$routes"; then
  failed+=("consistency")
fi

rm -f "$routes"
echo
if [ "${#failed[@]}" -gt 0 ]; then
  echo "check-infra: FAILED: ${failed[*]}"
  exit 1
fi
echo "check-infra: all passed"
