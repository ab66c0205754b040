"""Whole journeys through the real stack, every answer checked against
openapi.yaml: create-link -> the sandbox's consent page (plain HTTP forms) ->
our callback (303, not followed) -> consents, accounts -> revoke."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlencode, urlsplit

from conftest import Api, demo_url
from sandbox import ConsentPage, cookie_pair


def create_link(api: Api, body: dict | None = None) -> tuple[dict, str | None]:
    response = api.call("POST", "/links", json=body if body is not None else {})
    assert response.status_code == 201, response.text
    link = response.json()
    cookie = cookie_pair(response.headers.get("set-cookie"))
    return link, cookie


def callback_path(location: str) -> str:
    """The sandbox sends the browser to our CALLBACK_URL (the local stack's is
    on the API's own host); the same path and query are sent to the API."""
    parts = urlsplit(location)
    assert parts.path == "/callback", location
    return f"{parts.path}?{parts.query}"


def frontend_url() -> str:
    """The stack's first FRONTEND_URLS entry (the local stack's default)."""
    return os.environ.get("CONTRACT_FRONTEND_URL", f"{demo_url()}/connected")


def follow_callback(anonymous: Api, location: str, cookie: str | None = None):
    headers = {"Cookie": cookie} if cookie else {}
    return anonymous.call("GET", "/callback", path=callback_path(location), headers=headers)


def outcome(response) -> dict[str, list[str]]:
    assert response.status_code == 303, f"{response.status_code}: {response.text[:300]}"
    target = urlsplit(response.headers["location"])
    return parse_qs(target.query)


def statuses(consent: dict) -> list[tuple[str | None, str, str]]:
    return [(h["from"], h["to"], h["source"]) for h in consent["history"]]


def test_approve_accounts_and_revoke(api, new_api, anonymous):
    link, cookie = create_link(api)
    consent_id = link["consent_id"]
    assert cookie and cookie.startswith("__Host-fx_bind="), "create-link sets the binding cookie"

    pending = api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    assert pending["status"] == "pending"
    assert statuses(pending) == [(None, "pending", "create")]
    not_yet = api.call("GET", "/consents/{id}/accounts", ids={"id": consent_id})
    assert not_yet.status_code == 409, "no accounts before the user approved"

    location = ConsentPage(link["consent_url"]).decide("approve")
    assert "state" in parse_qs(urlsplit(location).query)
    back = follow_callback(anonymous, location, cookie)
    result = outcome(back)
    assert result["consent_id"] == [consent_id]
    assert result["status"] == ["authorized"]
    assert "error" not in result
    assert back.headers["location"].startswith(f"{frontend_url()}?"), "back to the default frontend URL"

    # A reload of the finished journey (no cookie any more) gets the same redirect.
    again = follow_callback(anonymous, location)
    assert again.headers["location"] == back.headers["location"]

    listed = api.call("GET", "/consents").json()["data"]
    assert [c["consent_id"] for c in listed] == [consent_id]
    consent = api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    assert consent["status"] == "authorized"
    assert consent["authorized_at"] and consent["provider"] == "sandbox-monzo"
    assert statuses(consent) == [(None, "pending", "create"), ("pending", "authorized", "callback")]

    accounts = api.call("GET", "/consents/{id}/accounts", ids={"id": consent_id}).json()["data"]
    assert accounts, "an authorized sandbox consent has accounts"
    everything = api.call("GET", "/accounts").json()["data"]
    assert {a["id"] for a in accounts} <= {a["id"] for a in everything}

    # Someone else sees nothing of it: 404 everywhere, as for an unknown id.
    other = new_api("other")
    for method, path in [
        ("GET", "/consents/{id}"),
        ("GET", "/consents/{id}/accounts"),
        ("POST", "/consents/{id}/revoke"),
    ]:
        assert other.call(method, path, ids={"id": consent_id}).status_code == 404
    assert other.call("GET", "/consents").json()["data"] == []
    assert other.call("GET", "/accounts").json()["data"] == []

    revoked = api.call("POST", "/consents/{id}/revoke", ids={"id": consent_id})
    assert revoked.status_code == 200
    revoked = revoked.json()
    assert revoked["status"] == "canceled" and revoked["revoked_at"] and revoked["revoke_requested_at"]
    assert statuses(revoked)[-2:] == [
        ("authorized", "revoke_pending", "revoke"),
        ("revoke_pending", "canceled", "revoke"),
    ]
    twice = api.call("POST", "/consents/{id}/revoke", ids={"id": consent_id})
    assert twice.status_code == 200 and twice.json() == revoked, "revoking again answers the same consent"
    gone = api.call("GET", "/consents/{id}/accounts", ids={"id": consent_id})
    assert gone.status_code == 409

    # The link is finished and revoked since: the browser gets the error page.
    stale = follow_callback(anonymous, location)
    assert stale.status_code == 400 and "text/html" in stale.headers["content-type"]


def test_deny_with_preselected_bank_and_template(api, anonymous):
    link, cookie = create_link(
        api, {"provider": "sandbox-barclays", "template": "acme", "skip_info": True, "skip_qr": True}
    )
    consent_id = link["consent_id"]
    query = parse_qs(urlsplit(link["consent_url"]).query)
    assert query.get("template") == ["acme"] and query.get("skip_info") == ["true"]

    location = ConsentPage(link["consent_url"]).decide("deny", bank="sandbox-barclays")
    assert parse_qs(urlsplit(location).query).get("error") == ["access_denied"]
    result = outcome(follow_callback(anonymous, location, cookie))
    assert result == {"consent_id": [consent_id], "status": ["canceled"], "error": ["access_denied"]}

    consent = api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    assert consent["status"] == "canceled" and consent["provider"] == "sandbox-barclays"
    assert statuses(consent) == [(None, "pending", "create"), ("pending", "canceled", "callback")]
    # Revoking what is already canceled answers it again, unchanged.
    again = api.call("POST", "/consents/{id}/revoke", ids={"id": consent_id})
    assert again.status_code == 200 and again.json() == consent


def test_denial_that_lost_its_state(api, anonymous):
    """Some banks drop our parameters: a denial with only the consent id is
    still confirmed with Finexer and recorded."""
    link, _ = create_link(api)
    location = ConsentPage(link["consent_url"]).decide("deny")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items() if k != "state"}
    result = outcome(anonymous.call("GET", "/callback", path=f"/callback?{urlencode(query)}"))
    assert result["status"] == ["canceled"]
    assert api.call("GET", "/consents/{id}", ids={"id": link["consent_id"]}).json()["status"] == "canceled"


def test_consents_are_listed_newest_first(api):
    first, _ = create_link(api)
    second, _ = create_link(api)
    listed = api.call("GET", "/consents").json()["data"]
    assert [c["consent_id"] for c in listed] == [second["consent_id"], first["consent_id"]]
    assert all(c["status"] == "pending" for c in listed)


def test_binding_cookie_and_state_are_checked(api, anonymous):
    link, cookie = create_link(api)
    location = ConsentPage(link["consent_url"]).decide("approve")

    wrong_cookie = follow_callback(anonymous, location, "__Host-fx_bind=someone-elses")
    assert wrong_cookie.status_code == 400

    # Another consent's id with this state: refused, and the state still works after.
    other, _ = create_link(api)
    swapped = location.replace(link["consent_id"], other["consent_id"])
    assert follow_callback(anonymous, swapped, cookie).status_code == 400

    assert outcome(follow_callback(anonymous, location, cookie))["status"] == ["authorized"]
