"""The 502 and 503 answers, produced by making the Finexer sandbox fail
(its `/_sandbox/faults` rules, each limited by `count` and cleared after the
test), checked against openapi.yaml: problem JSON, `Retry-After` on 503, and
the HTML page with `Retry-After` on the callback. Skipped when the stack does
not use the local sandbox."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from sandbox import ConsentPage, Sandbox, cookie_pair
from test_errors import html_page, problem
from test_journey import callback_path, outcome


@pytest.fixture
def linked(api):
    """A user with a Finexer customer and one pending consent, and the sandbox."""
    response = api.call("POST", "/links", json={})
    assert response.status_code == 201, response.text
    link = response.json()
    sandbox = Sandbox.from_consent_url(link["consent_url"])
    if not sandbox.is_local_sandbox():
        pytest.skip("the stack does not use the local Finexer sandbox")
    sandbox.clear_faults()
    yield api, link, sandbox, cookie_pair(response.headers.get("set-cookie"))
    sandbox.clear_faults()


def fault(method: str, prefix: str, status: int, count: int, retry_after: int | None = None) -> dict:
    rule = {"method": method, "path_prefix": prefix, "status": status, "count": count}
    if retry_after is not None:
        rule["retry_after"] = retry_after
    return rule


@pytest.mark.parametrize("path", ["/accounts", "/consents/{id}/accounts"])
def test_503_passes_on_finexers_retry_after(linked, path):
    api, link, sandbox, _ = linked
    if "{id}" in path:
        authorize(api, link, sandbox)
    # Longer than we wait inline: answered at once with Finexer's advice.
    sandbox.set_faults(fault("GET", "/bank_accounts", 503, count=1, retry_after=5))
    response = api.call("GET", path, ids={"id": link["consent_id"]})
    problem(response, 503, "upstream-unavailable")
    assert response.headers["retry-after"] == "5"
    # The fault is spent: the same call works again.
    assert api.call("GET", path, ids={"id": link["consent_id"]}).status_code == 200


def test_503_after_retries_without_advice(linked):
    api, _, sandbox, _ = linked
    sandbox.set_faults(fault("GET", "/bank_accounts", 500, count=3))
    response = api.call("GET", "/accounts")
    problem(response, 503, "upstream-unavailable")
    assert int(response.headers["retry-after"]) >= 1


def test_502_when_finexer_refuses_our_credentials(linked):
    api, _, sandbox, _ = linked
    sandbox.set_faults(fault("GET", "/bank_accounts", 401, count=1))
    problem(api.call("GET", "/accounts"), 502, "upstream-error")


def test_create_link_503_when_finexer_fails(linked):
    api, _, sandbox, _ = linked
    sandbox.set_faults(fault("POST", "/consents", 503, count=3, retry_after=7))
    response = api.call("POST", "/links", json={})
    problem(response, 503, "upstream-unavailable")
    assert int(response.headers["retry-after"]) >= 1


def test_revoke_503_leaves_revoke_pending_and_a_retry_finishes(linked):
    api, link, sandbox, _ = linked
    consent_id = link["consent_id"]
    sandbox.set_faults(fault("POST", f"/consents/{consent_id}/revoke", 500, count=3))
    response = api.call("POST", "/consents/{id}/revoke", ids={"id": consent_id})
    problem(response, 503, "upstream-unavailable")
    assert response.headers["retry-after"]
    pending = api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    assert pending["status"] == "revoke_pending" and pending["revoke_requested_at"]
    assert pending["revoked_at"] is None

    done = api.call("POST", "/consents/{id}/revoke", ids={"id": consent_id})
    assert done.status_code == 200 and done.json()["status"] == "canceled"


def test_callback_503_page_and_the_link_still_works_after(linked):
    api, link, sandbox, cookie = linked
    location = ConsentPage(link["consent_url"]).decide("approve")
    sandbox.set_faults(fault("GET", f"/consents/{link['consent_id']}", 503, count=1, retry_after=5))
    headers = {"Cookie": cookie} if cookie else {}
    unavailable = api.call("GET", "/callback", path=callback_path(location), headers=headers, auth=False)
    html_page(unavailable, 503)
    assert unavailable.headers["retry-after"] == "5"
    # Nothing was consumed: trying again completes the journey.
    back = api.call("GET", "/callback", path=callback_path(location), headers=headers, auth=False)
    assert outcome(back)["status"] == ["authorized"]


def authorize(api, link, sandbox) -> None:
    location = ConsentPage(link["consent_url"]).decide("approve")
    assert "state" in parse_qs(urlsplit(location).query)
    back = api.call("GET", "/callback", path=callback_path(location), auth=False)
    assert outcome(back)["status"] == ["authorized"]
