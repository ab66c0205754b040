"""Contract tests: the running local stack against `openapi.yaml`.

Starts nothing. The stack's API must already run at CONTRACT_BASE_URL
(default http://127.0.0.1:3000), e.g. under `make dev`; `scripts/contract.sh`
runs this suite. Users are fresh per run (tokens from `POST /local/token` on
the local stack's demo frontend, CONTRACT_DEMO_URL, default
http://localhost:3002: the platform's sign-in, not the API's), so a stack
that has been used before is fine.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from contract import Contract

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi.yaml"
RUN_ID = uuid.uuid4().hex[:8]
TIMEOUT = 60

# (operation, status) pairs the hand-written checks validated, for the summary.
CHECKED: dict[str, set[int]] = defaultdict(set)
# Filled in by test_schemathesis, printed at the end.
SUMMARY: list[str] = []


def base_url() -> str:
    return os.environ.get("CONTRACT_BASE_URL", "http://127.0.0.1:3000").rstrip("/")


def demo_url() -> str:
    return os.environ.get("CONTRACT_DEMO_URL", "http://localhost:3002").rstrip("/")


class Api:
    """Calls the API and checks every answer against the description."""

    def __init__(self, contract: Contract, token: str | None, user: str | None = None):
        self.contract = contract
        self.token = token
        self.user = user
        self.base = base_url()

    def call(
        self,
        method: str,
        template: str,
        *,
        path: str | None = None,
        ids: dict[str, str] | None = None,
        auth: str | None | bool = True,
        check: bool = True,
        **kwargs,
    ) -> requests.Response:
        """`template` is the described path (`/consents/{id}`); `ids` fill it
        in (percent-encoded), or `path` gives the exact path to send."""
        if path is None:
            path = template
            for name, value in (ids or {}).items():
                path = path.replace("{" + name + "}", quote(value, safe=""))
        headers = dict(kwargs.pop("headers", {}) or {})
        if auth is True and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif isinstance(auth, str):
            headers["Authorization"] = auth
        response = requests.request(
            method,
            self.base + path,
            headers=headers,
            allow_redirects=False,
            timeout=TIMEOUT,
            **kwargs,
        )
        if check:
            self.contract.check(response, method, template)
            self.contract.schemathesis_check(response, method, template)
            CHECKED[f"{method.upper()} {template}"].add(response.status_code)
        return response


def mint_token(user: str) -> str:
    answer = requests.post(f"{demo_url()}/local/token", json={"user": user}, timeout=TIMEOUT)
    assert answer.status_code == 200, f"POST /local/token answered {answer.status_code}: {answer.text}"
    return answer.json()["token"]


@pytest.fixture(scope="session", autouse=True)
def stack_is_up():
    try:
        requests.get(f"{base_url()}/consents", timeout=10)
    except requests.RequestException as e:
        pytest.exit(
            f"no API at CONTRACT_BASE_URL={base_url()} ({e.__class__.__name__}); "
            "start the stack first (make dev)",
            returncode=2,
        )


@pytest.fixture(scope="session")
def contract() -> Contract:
    return Contract(SPEC)


@pytest.fixture
def new_api(contract):
    """Makes an Api for a fresh user: new_api("label")."""

    def make(label: str = "user") -> Api:
        user = f"contract-{RUN_ID}-{label}-{uuid.uuid4().hex[:6]}"
        return Api(contract, mint_token(user), user)

    return make


@pytest.fixture
def api(new_api) -> Api:
    return new_api()


@pytest.fixture
def anonymous(contract) -> Api:
    return Api(contract, None)


def pytest_terminal_summary(terminalreporter):
    if CHECKED:
        terminalreporter.section("responses checked against openapi.yaml by hand-written tests")
        for operation in sorted(CHECKED):
            statuses = ", ".join(str(s) for s in sorted(CHECKED[operation]))
            terminalreporter.write_line(f"{operation}: {statuses}")
    if SUMMARY:
        terminalreporter.section("schemathesis")
        for line in SUMMARY:
            terminalreporter.write_line(line)
