"""Whole journeys through the real stack, every answer checked against
openapi.yaml: create-link -> the sandbox's consent page (plain HTTP forms) ->
our callback (303 with a one-time code in the fragment, not followed) ->
confirm with the code (and, for a link created with a code_challenge, its
verifier or the person's yes) -> consents, accounts -> revoke."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

from conftest import Api, demo_url
from sandbox import ConsentPage

# Well-formed (43 base64url characters) but never handed out.
FORGED_CODE = "B" * 43


def create_link(api: Api, body: dict | None = None) -> dict:
    response = api.call("POST", "/links", json=body if body is not None else {})
    assert response.status_code == 201, response.text
    assert "set-cookie" not in response.headers, "create-link sets no cookie"
    return response.json()


def callback_path(location: str) -> str:
    """The sandbox sends the browser to our CALLBACK_URL (the local stack's is
    on the API's own host); the same path and query are sent to the API."""
    parts = urlsplit(location)
    assert parts.path == "/callback", location
    return f"{parts.path}?{parts.query}"


def frontend_url() -> str:
    """The stack's first FRONTEND_URLS entry (the local stack's default)."""
    return os.environ.get("CONTRACT_FRONTEND_URL", f"{demo_url()}/connected")


def follow_callback(anonymous: Api, location: str):
    return anonymous.call("GET", "/callback", path=callback_path(location))


def outcome(response) -> dict[str, list[str]]:
    """The redirect's query: what the frontend's server may see (never a code)."""
    assert response.status_code == 303, f"{response.status_code}: {response.text[:300]}"
    target = urlsplit(response.headers["location"])
    query = parse_qs(target.query)
    assert "code" not in query, f"a code in the query: {target.geturl()}"
    return query


def code_of(response) -> str:
    """The one-time code, from the redirect's fragment (`#code=...`)."""
    fragment = parse_qs(urlsplit(response.headers["location"]).fragment)
    assert list(fragment) == ["code"], f"the fragment is the code's alone: {fragment}"
    [code] = fragment["code"]
    return code


def new_verifier() -> str:
    """A verifier as a tab makes one: 43 to 128 RFC 7636 unreserved characters."""
    return secrets.token_urlsafe(48) + ".~"


def challenge_of(verifier: str) -> str:
    """S256: base64url (no padding) of the verifier's SHA-256."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def statuses(consent: dict) -> list[tuple[str | None, str, str]]:
    return [(h["from"], h["to"], h["source"]) for h in consent["history"]]


def confirm(api: Api, consent_id: str, code: str, **proof):
    """POST /consents/{id}/confirm with the code and, if given, a proof
    (`code_verifier=...` or `confirmed_by_user=True`)."""
    return api.call("POST", "/consents/{id}/confirm", ids={"id": consent_id}, json={"code": code, **proof})


def approved(api: Api, anonymous: Api, body: dict | None = None) -> tuple[str, str]:
    """A link of `api`'s user (created with `body`), approved at the bank: (consent id, code)."""
    link = create_link(api, body)
    back = follow_callback(anonymous, ConsentPage(link["consent_url"]).decide("approve"))
    assert outcome(back)["status"] == ["authorized"]
    return link["consent_id"], code_of(back)


def test_approve_confirm_accounts_and_revoke(api, new_api, anonymous):
    link = create_link(api)
    consent_id = link["consent_id"]

    pending = api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    assert pending["status"] == "pending"
    assert statuses(pending) == [(None, "pending", "create")]
    not_yet = api.call("GET", "/consents/{id}/accounts", ids={"id": consent_id})
    assert not_yet.status_code == 409, "no accounts before the user approved"

    location = ConsentPage(link["consent_url"]).decide("approve")
    assert "state" in parse_qs(urlsplit(location).query)
    back = follow_callback(anonymous, location)
    result = outcome(back)
    assert result["consent_id"] == [consent_id]
    assert result["status"] == ["authorized"]
    assert "error" not in result
    code = code_of(back)
    assert len(code) == 43, "a one-time code of 256 bits, base64url"
    assert back.headers["location"].startswith(f"{frontend_url()}?"), "back to the default frontend URL"
    assert back.headers["location"].endswith(f"#code={code}"), "the code is in the fragment"

    # A reload of the finished journey gets the same redirect, without the code.
    reload = follow_callback(anonymous, location)
    assert outcome(reload) == {"consent_id": [consent_id], "status": ["authorized"]}
    assert "#" not in reload.headers["location"] and code not in reload.headers["location"]

    listed = api.call("GET", "/consents").json()["data"]
    assert [c["consent_id"] for c in listed] == [consent_id]
    consent = api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    assert consent["status"] == "authorized"
    assert consent["authorized_at"] and consent["provider"] == "sandbox-monzo"
    assert consent["confirm_by"] and consent["confirmed_at"] is None and consent["revoke_reason"] is None
    assert statuses(consent) == [(None, "pending", "create"), ("pending", "authorized", "callback")]

    # Authorized but not confirmed: no accounts yet, in either listing.
    unconfirmed = api.call("GET", "/consents/{id}/accounts", ids={"id": consent_id})
    assert unconfirmed.status_code == 409 and "onfirm" in unconfirmed.json()["detail"]
    assert api.call("GET", "/accounts").json()["data"] == []

    confirmed = confirm(api, consent_id, code)
    assert confirmed.status_code == 200, confirmed.text
    confirmed = confirmed.json()
    assert confirmed["status"] == "authorized" and confirmed["confirmed_at"]
    assert statuses(confirmed)[-1] == ("authorized", "authorized", "confirm")
    assert confirmed["history"][-1]["confirmed_by"] == "code", "a link without a challenge"
    # A repeat (a reload, a retried request) answers the same consent.
    repeat = confirm(api, consent_id, code)
    assert repeat.status_code == 200 and repeat.json() == confirmed
    # Another code for a confirmed consent: 409.
    assert confirm(api, consent_id, FORGED_CODE).status_code == 409

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
    # Even with the (used) code: 404, and the owner's consent stands.
    assert confirm(other, consent_id, code).status_code == 404
    assert confirm(other, consent_id, FORGED_CODE).status_code == 404
    assert other.call("GET", "/consents").json()["data"] == []
    assert other.call("GET", "/accounts").json()["data"] == []
    assert api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()["status"] == "authorized"

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
    assert api.call("GET", "/accounts").json()["data"] == []

    # The link is finished and revoked since: the browser gets the error page.
    stale = follow_callback(anonymous, location)
    assert stale.status_code == 400 and "text/html" in stale.headers["content-type"]


def test_deny_with_preselected_bank_and_template(api, anonymous):
    link = create_link(
        api, {"provider": "sandbox-barclays", "template": "acme", "skip_info": True, "skip_qr": True}
    )
    consent_id = link["consent_id"]
    query = parse_qs(urlsplit(link["consent_url"]).query)
    assert query.get("template") == ["acme"] and query.get("skip_info") == ["true"]

    location = ConsentPage(link["consent_url"]).decide("deny", bank="sandbox-barclays")
    assert parse_qs(urlsplit(location).query).get("error") == ["access_denied"]
    result = outcome(follow_callback(anonymous, location))
    assert result == {"consent_id": [consent_id], "status": ["canceled"], "error": ["access_denied"]}

    consent = api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    assert consent["status"] == "canceled" and consent["provider"] == "sandbox-barclays"
    # Finexer's webhook for the denial races the browser back: whichever
    # comes first records it (an approval, by contrast, waits for the callback).
    history = statuses(consent)
    assert history[0] == (None, "pending", "create")
    assert history[1:] in ([("pending", "canceled", "callback")], [("pending", "canceled", "webhook")]), history
    # Revoking what is already canceled answers it again, unchanged.
    again = api.call("POST", "/consents/{id}/revoke", ids={"id": consent_id})
    assert again.status_code == 200 and again.json() == consent
    # Nothing to confirm: no code was handed out for a denial.
    assert confirm(api, consent_id, FORGED_CODE).status_code == 400


def test_denial_that_lost_its_state(api, anonymous):
    """Some banks drop our parameters: a denial with only the consent id gets
    the one fixed page, and is still confirmed with Finexer and recorded."""
    link = create_link(api)
    location = ConsentPage(link["consent_url"]).decide("deny")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items() if k != "state"}
    page = anonymous.call("GET", "/callback", path=f"/callback?{urlencode(query)}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    unknown = anonymous.call("GET", "/callback", path="/callback?fx_consent=bc_unknown&error=access_denied")
    assert unknown.status_code == 200 and unknown.text == page.text, "the same page for every consent"
    assert api.call("GET", "/consents/{id}", ids={"id": link["consent_id"]}).json()["status"] == "canceled"


def test_an_approval_that_lost_its_state_is_not_completed(api, anonymous):
    """Without the state nothing proves who approved: the page is the same,
    the consent stays pending, and no code is handed out."""
    link = create_link(api)
    location = ConsentPage(link["consent_url"]).decide("approve")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items() if k != "state"}
    page = anonymous.call("GET", "/callback", path=f"/callback?{urlencode(query)}")
    assert page.status_code == 200 and "code=" not in page.text
    assert api.call("GET", "/consents/{id}", ids={"id": link["consent_id"]}).json()["status"] == "pending"
    # The link itself still completes.
    assert outcome(follow_callback(anonymous, location))["status"] == ["authorized"]


def test_a_consent_completed_by_someone_else_is_revoked(new_api, anonymous):
    """The owner's link, finished at the bank in a stranger's browser: the
    stranger's session comes back with a valid code. It is refused like an
    unknown consent, and the consent is revoked, never the owner's to use."""
    owner, stranger = new_api("owner"), new_api("stranger")
    consent_id, code = approved(owner, anonymous)

    assert confirm(stranger, consent_id, code).status_code == 404
    consent = owner.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    assert consent["status"] == "canceled" and consent["revoke_reason"] == "confirmed_by_another_user"
    assert consent["confirmed_at"] is None
    reasons = [h.get("reason") for h in consent["history"] if h["source"] == "revoke"]
    assert "confirmed_by_another_user" in reasons

    # The code is spent; nobody sees accounts.
    assert confirm(owner, consent_id, code).status_code == 409
    assert owner.call("GET", "/consents/{id}/accounts", ids={"id": consent_id}).status_code == 409
    for user in (owner, stranger):
        assert user.call("GET", "/accounts").json()["data"] == []


def test_a_wrong_code_confirms_nothing(api, anonymous):
    consent_id, code = approved(api, anonymous)
    before = api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    wrong = confirm(api, consent_id, FORGED_CODE)
    assert wrong.status_code == 400 and wrong.json()["type"] == "/problems/bad-request"
    assert api.call("GET", "/consents/{id}", ids={"id": consent_id}).json() == before
    assert confirm(api, consent_id, code).status_code == 200, "the right code still works"


def test_a_revoked_consent_cannot_be_confirmed(api, anonymous):
    consent_id, code = approved(api, anonymous)
    assert api.call("POST", "/consents/{id}/revoke", ids={"id": consent_id}).status_code == 200
    late = confirm(api, consent_id, code)
    assert late.status_code == 409 and late.json()["type"] == "/problems/conflict"


def test_consents_are_listed_newest_first(api):
    first = create_link(api)
    second = create_link(api)
    listed = api.call("GET", "/consents").json()["data"]
    assert [c["consent_id"] for c in listed] == [second["consent_id"], first["consent_id"]]
    assert all(c["status"] == "pending" for c in listed)


def test_the_state_is_bound_to_its_consent(api, anonymous):
    link = create_link(api)
    location = ConsentPage(link["consent_url"]).decide("approve")

    # Another consent's id with this state: refused, and the state still works after.
    other = create_link(api)
    swapped = location.replace(link["consent_id"], other["consent_id"])
    assert follow_callback(anonymous, swapped).status_code == 400

    assert outcome(follow_callback(anonymous, location))["status"] == ["authorized"]


def test_a_challenged_link_confirmed_in_its_own_tab_says_verifier(api, anonymous):
    """The tab that created the link with a code_challenge confirms with its
    verifier; the consent names the bank for a confirmation screen."""
    verifier = new_verifier()
    body = {"provider": "sandbox-hsbc", "code_challenge": challenge_of(verifier), "code_challenge_method": "S256"}
    consent_id, code = approved(api, anonymous, body)
    waiting = api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    assert waiting["bank_name"] == "HSBC UK (Sandbox)" and waiting["provider"] == "sandbox-hsbc"
    assert waiting["confirmed_at"] is None

    confirmed = confirm(api, consent_id, code, code_verifier=verifier)
    assert confirmed.status_code == 200, confirmed.text
    confirmed = confirmed.json()
    assert confirmed["confirmed_at"] and confirmed["bank_name"] == "HSBC UK (Sandbox)"
    assert statuses(confirmed)[-1] == ("authorized", "authorized", "confirm")
    assert confirmed["history"][-1]["confirmed_by"] == "verifier"
    # A repeat with the same proof answers the same consent.
    repeat = confirm(api, consent_id, code, code_verifier=verifier)
    assert repeat.status_code == 200 and repeat.json() == confirmed
    assert api.call("GET", "/consents/{id}/accounts", ids={"id": consent_id}).json()["data"]


def test_a_wrong_verifier_is_refused_and_changes_nothing(api, anonymous):
    verifier = new_verifier()
    consent_id, code = approved(api, anonymous, {"code_challenge": challenge_of(verifier)})
    before = api.call("GET", "/consents/{id}", ids={"id": consent_id}).json()
    for proof in ({"code_verifier": new_verifier()}, {}):
        refused = confirm(api, consent_id, code, **proof)
        assert refused.status_code == 400 and refused.json()["type"] == "/problems/bad-request", refused.text
        assert api.call("GET", "/consents/{id}", ids={"id": consent_id}).json() == before
    assert confirm(api, consent_id, code, code_verifier=verifier).status_code == 200, "the code is still usable"


def test_a_tab_without_the_verifier_confirms_only_with_the_users_yes(api, anonymous):
    """The return opened in another tab (or forwarded): the code alone is
    refused; after the person said yes, `confirmed_by_user` confirms it."""
    consent_id, code = approved(api, anonymous, {"code_challenge": challenge_of(new_verifier())})
    assert confirm(api, consent_id, code).status_code == 400
    assert confirm(api, consent_id, code, confirmed_by_user=False).status_code == 400
    confirmed = confirm(api, consent_id, code, confirmed_by_user=True)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["history"][-1]["confirmed_by"] == "user"
