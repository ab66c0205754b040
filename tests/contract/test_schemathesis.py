"""Schemathesis against the running stack: every operation of openapi.yaml,
all of its checks (no 5xx, status codes, content types, headers and bodies as
described, invalid input refused, valid input accepted, auth enforced, ...),
a fixed budget and seed, and the stateful phase following the description's
links (POST /links -> GET /consents/{id}, its accounts, confirm, revoke)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from conftest import ROOT, RUN_ID, SPEC, SUMMARY, base_url, mint_token

CONFIG = Path(__file__).with_name("schemathesis.toml")
OUT = ROOT / ".local" / "contract"
MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "50"))
SEED = int(os.environ.get("CONTRACT_SEED", "20261125"))
PHASES = "examples,coverage,fuzzing,stateful"


def st_binary() -> str:
    local = Path(sys.executable).with_name("st")
    return str(local) if local.exists() else (shutil.which("st") or "st")


def test_schemathesis_finds_nothing():
    token = mint_token(f"contract-{RUN_ID}-schemathesis")
    shutil.rmtree(OUT / "report", ignore_errors=True)
    (OUT / "report").mkdir(parents=True, exist_ok=True)
    command = [
        st_binary(),
        "--config-file", str(CONFIG),
        "run", str(SPEC),
        "--url", base_url(),
        "--header", f"Authorization: Bearer {token}",
        "--checks", "all",
        "--phases", PHASES,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--request-timeout", "30",
        "--generation-database", "none",
        "--report", "json,vcr",
        "--report-json-path", str(OUT / "report" / "run.json"),
        "--report-vcr-path", str(OUT / "report" / "cassette.yaml"),
        "--no-color",
    ]
    shown = " ".join(c if not c.startswith("Authorization") else "'Authorization: Bearer <token>'" for c in command)
    print(f"$ {shown}")
    done = subprocess.run(command, cwd=OUT, capture_output=True, text=True, timeout=1800)
    log = OUT / "schemathesis.log"
    log.write_text(done.stdout + done.stderr)
    print(done.stdout[-6000:])

    report = json.loads((OUT / "report" / "run.json").read_text())
    cases = report["test_cases"]
    statuses = Counter(
        int(code)
        for code in re.findall(
            r"^  response:\n    status:\n      code: '(\d{3})'",
            (OUT / "report" / "cassette.yaml").read_text(),
            flags=re.M,
        )
    )
    server_errors = sum(n for code, n in statuses.items() if code >= 500)
    SUMMARY.extend(
        [
            f"schemathesis {report['schemathesis_version']}: {cases['generated']} test cases generated "
            f"({MAX_EXAMPLES} examples per operation, seed {SEED}, phases {PHASES}, checks all)",
            f"{sum(statuses.values())} responses recorded; statuses: "
            + ", ".join(f"{code} x{n}" for code, n in sorted(statuses.items())),
            f"5xx: {server_errors}; failures: {cases['with_failures']}; errors: {cases['errored']}",
            f"log: {log.relative_to(ROOT)}, cassette: {(OUT / 'report' / 'cassette.yaml').relative_to(ROOT)}",
        ]
    )

    tail = "\n".join((done.stdout + done.stderr).splitlines()[-150:])
    assert report["operations"]["tested"] == report["operations"]["total"] == 10, tail
    assert cases["generated"] > 0, tail
    phases = {name: phase["status"] for name, phase in report["phases"].items()}
    assert phases == {name: "success" for name in PHASES.split(",")}, f"{phases}\n{tail}"
    assert server_errors == 0, f"{server_errors} responses were 5xx\n{tail}"
    assert not report["failures"] and not report["errors"], tail
    assert done.returncode == 0, tail
