"""The 502 and 503 answers, produced by making the Finexer sandbox fail
(its `/_sandbox/faults` rules, each limited by `count` and cleared after the
test), checked against openapi.yaml: problem JSON, `Retry-After` on 503, and
the HTML page with `Retry-After` on the callback. Skipped when the stack does
not use the local sandbox."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from sandbox import ConsentPage, Sandbox
from test_errors import html_page, problem
from test_journey import callback_path, code_of, confirm, outcome


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
    yield api, link, sandbox
    sandbox.clear_faults()


def fault(method: str, prefix: str, status: int, count: int, retry_after: int | None = None) -> dict:
    rule = {"method": method, "path_prefix": prefix, "status": status, "count": count}
    if retry_after is not None:
        rule["retry_after"] = retry_after
    return rule


@pytest.mark.parametrize("path", ["/accounts", "/consents/{id}/accounts"])
def test_503_passes_on_finexers_retry_after(linked, path):
    api, link, sandbox = linked
    authorize_and_confirm(api, link)
    # Longer than we wait inline: answered at once with Finexer's advice.
    sandbox.set_faults(fault("GET", "/bank_accounts", 503, count=1, retry_after=5))
    response = api.call("GET", path, ids={"id": link["consent_id"]})
    problem(response, 503, "upstream-unavailable")
    assert response.headers["retry-after"] == "5"
    # The fault is spent: the same call works again.
    assert api.call("GET", path, ids={"id": link["consent_id"]}).status_code == 200


def test_503_after_retries_without_advice(linked):
    api, link, sandbox = linked
    authorize_and_confirm(api, link)
    sandbox.set_faults(fault("GET", "/bank_accounts", 500, count=3))
    response = api.call("GET", "/accounts")
    problem(response, 503, "upstream-unavailable")
    assert int(response.headers["retry-after"]) >= 1


def test_502_when_finexer_refuses_our_credentials(linked):
    api, link, sandbox = linked
    authorize_and_confirm(api, link)
    sandbox.set_faults(fault("GET", "/bank_accounts", 401, count=1))
    problem(api.call("GET", "/accounts"), 502, "upstream-error")


def test_create_link_503_when_finexer_fails(linked):
    api, _, sandbox = linked
    sandbox.set_faults(fault("POST", "/consents", 503, count=3, retry_after=7))
    response = api.call("POST", "/links", json={})
    problem(response, 503, "upstream-unavailable")
    assert int(response.headers["retry-after"]) >= 1


def test_revoke_503_leaves_revoke_pending_and_a_retry_finishes(linked):
    api, link, sandbox = linked
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
    api, link, sandbox = linked
    location = ConsentPage(link["consent_url"]).decide("approve")
    # The approval's webhooks read the consent at Finexer too: let them pass
    # first, so that the one faulted answer goes to the callback.
    sandbox.settle_webhooks(link["consent_id"], "consent.authorized")
    sandbox.set_faults(fault("GET", f"/consents/{link['consent_id']}", 503, count=1, retry_after=5))
    unavailable = api.call("GET", "/callback", path=callback_path(location), auth=False)
    html_page(unavailable, 503)
    assert unavailable.headers["retry-after"] == "5"
    # Nothing was consumed: trying again completes the journey.
    back = api.call("GET", "/callback", path=callback_path(location), auth=False)
    assert outcome(back)["status"] == ["authorized"]


def test_confirm_by_a_stranger_while_finexer_fails_still_refuses(linked, new_api):
    """The stranger's valid code asks for a revocation; Finexer fails it. The
    answer is still 404, and the consent stays revoke_pending (no accounts)
    until a revoke finishes it."""
    api, link, sandbox = linked
    code = authorize(api, link)
    consent_id = link["consent_id"]
    sandbox.set_faults(fault("POST", f"/consents/{consent_id}/revoke", 500, count=3))
    problem(confirm(new_api("stranger"), consent_id, code), 404, "not-found")
    pending = api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    assert pending["status"] == "revoke_pending" and pending["revoke_reason"] == "confirmed_by_another_user"
    problem(api.call("GET", "/consents/{id}/accounts", ids={"id": consent_id}), 409, "conflict")
    sandbox.clear_faults()
    done = api.call("POST", "/consents/{id}/revoke", ids={"id": consent_id})
    assert done.status_code == 200 and done.json()["status"] == "canceled"


def authorize(api, link) -> str:
    """Approves the link at the sandbox and follows the callback: the code."""
    location = ConsentPage(link["consent_url"]).decide("approve")
    assert "state" in parse_qs(urlsplit(location).query)
    back = api.call("GET", "/callback", path=callback_path(location), auth=False)
    assert outcome(back)["status"] == ["authorized"]
    return code_of(back)


def authorize_and_confirm(api, link) -> None:
    code = authorize(api, link)
    assert confirm(api, link["consent_id"], code).status_code == 200
