"""Error answers of every route, each checked against openapi.yaml (status
described, problem JSON or HTML page as described, required headers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time

import pytest

from conftest import Api
from sandbox import ConsentPage, Sandbox
from test_journey import FORGED_CODE, approved, callback_path, confirm, create_link

PROTECTED = [
    ("POST", "/links"),
    ("GET", "/consents"),
    ("GET", "/consents/{id}"),
    ("GET", "/consents/{id}/accounts"),
    ("GET", "/accounts"),
    ("POST", "/consents/{id}/revoke"),
    ("POST", "/consents/{id}/confirm"),
    ("POST", "/consents/{id}/reconfirm"),
]
PUBLIC = {("GET", "/callback"), ("POST", "/webhooks/finexer")}
WITH_ID = [op for op in PROTECTED if "{id}" in op[1]]
# A body of the right shape, where the operation takes one.
BODY = {("POST", "/consents/{id}/confirm"): {"code": FORGED_CODE}}


def problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"/problems/{slug}", body
    return body


def html_page(response, status: int) -> str:
    assert response.status_code == status, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="callback-error"' in response.text
    return response.text


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: dict, secret: str) -> str:
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_every_protected_route_is_described_as_such(contract):
    described = {(m, p) for m, p, op in contract.operations() if op.get("security", None) != []}
    assert described == set(PROTECTED)
    public = {(m, p) for m, p, op in contract.operations() if op.get("security", None) == []}
    assert public == PUBLIC


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-jwt",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer " + jwt({"sub": "mallory", "iss": "local", "aud": "connect", "exp": 4102444800}, "guessed"),
    ],
    ids=["missing", "empty", "garbage", "basic", "foreign-signature"],
)
def test_401_without_a_valid_bearer_token(anonymous, method, path, authorization):
    response = anonymous.call(method, path, ids={"id": "bc_unknown"}, auth=authorization)
    problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), WITH_ID)
def test_404_for_an_unknown_consent(api, method, path):
    response = api.call(method, path, ids={"id": "bc_doesNotExist0"}, json=BODY.get((method, path)))
    problem(response, 404, "not-found")


@pytest.mark.parametrize(("method", "path"), WITH_ID)
@pytest.mark.parametrize(
    "bad_id",
    ["bad$id", "a b", "x" * 129, "bc_é", "semi;colon", "a+b", "\x00", "a/b"],
    ids=["dollar", "space", "too-long", "non-ascii", "semicolon", "plus", "nul", "slash"],
)
def test_400_for_an_id_the_description_refuses(api, contract, method, path, bad_id):
    # The description's pattern refuses it too.
    pattern = contract.doc["components"]["schemas"]["Id"]["pattern"]
    assert not re.fullmatch(pattern, bad_id)
    problem(api.call(method, path, ids={"id": bad_id}, json=BODY.get((method, path))), 400, "bad-request")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("{", id="not JSON"),
        pytest.param('{"provider": "sandbox-monzo",}', id="trailing comma"),
        pytest.param("null", id="null"),
        pytest.param('"sandbox-monzo"', id="a string"),
        pytest.param("[]", id="an empty array"),
        pytest.param('{"unknown": 1}', id="unknown field"),
        pytest.param('{"skip_info": "yes"}', id="skip_info not a boolean"),
        pytest.param('{"skip_qr": 1}', id="skip_qr not a boolean"),
        pytest.param('{"provider": 7}', id="not a string"),
        pytest.param('{"template": "../admin"}', id="template outside the pattern"),
        pytest.param('{"template": ""}', id="empty template"),
        pytest.param('{"provider": "' + "p" * 129 + '"}', id="provider too long"),
        pytest.param('{"return_to": "https://evil.example/connected"}', id="return_to not allowed"),
        pytest.param('{"return_to": "' + "h" * 2049 + '"}', id="return_to too long"),
        pytest.param('{"provider": "a", "provider": "b"}', id="repeated field"),
        pytest.param('{"code_challenge": "' + "C" * 42 + '"}', id="code_challenge too short"),
        pytest.param('{"code_challenge": "' + "C" * 44 + '"}', id="code_challenge too long"),
        pytest.param('{"code_challenge": "' + "C" * 42 + '+"}', id="code_challenge outside base64url"),
        pytest.param('{"code_challenge": "' + "C" * 43 + '", "code_challenge_method": "plain"}', id="method plain"),
        pytest.param('{"code_challenge_method": "S256"}', id="method without a challenge"),
    ],
)
def test_400_for_a_bad_create_link_body(api, body):
    response = api.call("POST", "/links", data=body, headers={"Content-Type": "application/json"})
    problem(response, 400, "bad-request")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(None, id="no body"),
        pytest.param("{}", id="no code"),
        pytest.param('{"code": null}', id="null code"),
        pytest.param('{"code": 43}', id="code not a string"),
        pytest.param('{"code": "short"}', id="code too short"),
        pytest.param('{"code": "' + "B" * 44 + '"}', id="code too long"),
        pytest.param('{"code": "' + "B" * 42 + '="}', id="code outside base64url"),
        pytest.param('{"code": "' + "B" * 43 + '", "extra": 1}', id="unknown field"),
        pytest.param("[]", id="an array"),
        pytest.param("{", id="not JSON"),
        pytest.param('{"code": "' + "B" * 43 + '", "code_verifier": "short"}', id="verifier too short"),
        pytest.param(
            '{"code": "' + "B" * 43 + '", "code_verifier": "' + "v" * 43 + '", "confirmed_by_user": true}',
            id="both proofs",
        ),
        pytest.param('{"code": "' + "B" * 43 + '", "confirmed_by_user": false}', id="confirmed_by_user false"),
    ],
)
def test_400_for_a_bad_confirm_body(api, anonymous, body):
    consent_id, code = approved(api, anonymous)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    response = api.call("POST", "/consents/{id}/confirm", ids={"id": consent_id}, data=body, headers=headers)
    problem(response, 400, "bad-request")
    # Nothing was spent: the right code still confirms.
    assert confirm(api, consent_id, code).status_code == 200


def test_confirm_413_for_a_body_over_16_kib(api):
    body = json.dumps({"code": "B" * (16 * 1024)})
    response = api.call(
        "POST", "/consents/{id}/confirm", ids={"id": "bc_unknown"}, data=body,
        headers={"Content-Type": "application/json"},
    )
    problem(response, 413, "payload-too-large")


def test_confirm_400_for_a_pending_consent(api):
    """No code was handed out yet, so none can match."""
    link = create_link(api)
    problem(confirm(api, link["consent_id"], FORGED_CODE), 400, "bad-request")


def test_400_for_a_body_that_is_not_json(api):
    response = api.call(
        "POST", "/links", data="provider=sandbox-monzo", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    problem(response, 400, "bad-request")


def test_413_for_a_body_over_16_kib(api):
    body = json.dumps({"template": "t" * (16 * 1024)})
    response = api.call("POST", "/links", data=body, headers={"Content-Type": "application/json"})
    body = problem(response, 413, "payload-too-large")
    assert body["status"] == 413


def test_a_body_of_exactly_16_kib_is_read(api):
    body = '{"template": "acme"}'
    body = body + " " * (16 * 1024 - len(body))
    response = api.call("POST", "/links", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("body", [None, "", "  \n", "{}"], ids=["no-body", "empty", "whitespace", "empty-object"])
def test_create_link_body_is_optional(api, body):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    response = api.call("POST", "/links", data=body, headers=headers)
    assert response.status_code == 201, response.text


def test_nulls_mean_absent(api):
    body = {"provider": None, "template": None, "skip_info": None, "skip_qr": None, "return_to": None}
    assert api.call("POST", "/links", json=body).status_code == 201


def test_400_when_finexer_does_not_know_the_provider(api):
    response = api.call("POST", "/links", json={"provider": "no-such-bank"})
    problem(response, 400, "rejected-by-provider")


def test_a_json_array_body_is_refused(api):
    response = api.call(
        "POST", "/links", data="[null, null, null, null, null]", headers={"Content-Type": "application/json"}
    )
    problem(response, 400, "bad-request")


def test_400_for_a_token_without_email_on_the_first_link(contract):
    """The authorizer accepts it; create-link needs the email to set up the
    user's Finexer customer. Needs the local stack's token secret
    (CONTRACT_JWT_SECRET, default the local default)."""
    secret = os.environ.get("CONTRACT_JWT_SECRET", "local-dev-secret")
    now = int(time.time())
    claims = {"sub": f"no-email-{now}", "iss": "local", "aud": "connect", "iat": now, "exp": now + 600}
    api = Api(contract, jwt(claims, secret))
    response = api.call("POST", "/links", json={})
    if response.status_code == 401:
        pytest.skip("the stack uses another LOCAL_JWT_SECRET (set CONTRACT_JWT_SECRET)")
    body = problem(response, 400, "bad-request")
    assert "email" in body["detail"]


# -- the callback: HTML pages, never JSON -----------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "",
        "state=abc",
        "fx_consent=",
        "fx_consent=bad%24id",
        "fx_consent=" + "x" * 129,
        "fx_consent=bc_unknown&state=not-a-jwt",
        "fx_consent=bc_unknown&state=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "fx_consent=a&fx_consent=b",
        "fx_consent=bc_unknown&pad=" + "p" * 4100,
    ],
    ids=[
        "no-params",
        "no-consent",
        "empty-consent",
        "bad-consent-id",
        "consent-id-too-long",
        "garbage-state",
        "alg-none-state",
        "repeated-parameter",
        "query-too-long",
    ],
)
def test_callback_error_pages(anonymous, query):
    html_page(anonymous.call("GET", "/callback", path=f"/callback?{query}"), 400)


def test_callback_without_state_is_one_fixed_page(api, anonymous):
    """Without the state nothing proves who asks: every consent id, unknown,
    pending or authorized, with or without an error, gets the same 200 page
    (events/callback/stateless-return.json is one of these)."""
    pending = create_link(api)["consent_id"]
    authorized, _ = approved(api, anonymous)
    queries = [
        "fx_consent=bc_unknown",
        "fx_consent=bc_unknown&error=access_denied&error_code=user_denied",
        f"fx_consent={pending}",
        f"fx_consent={pending}&error=access_denied",
        f"fx_consent={authorized}",
        f"fx_consent={authorized}&error=access_denied",
    ]
    pages = {html_page(anonymous.call("GET", "/callback", path=f"/callback?{q}"), 200) for q in queries}
    assert len(pages) == 1, "the page must not depend on the consent"
    statuses = [api.call("GET", "/consents/{id}", ids={"id": c}).json()["status"] for c in (pending, authorized)]
    assert statuses == ["pending", "authorized"], "Finexer still has the first pending: nothing changes"


def test_callback_409_while_the_bank_has_not_confirmed(api, anonymous):
    """A real state for a consent Finexer has (again) pending: the sandbox's
    admin API moves it back after the approval, as a slow bank would leave it."""
    link = create_link(api)
    sandbox = Sandbox.from_consent_url(link["consent_url"])
    if not sandbox.is_local_sandbox():
        pytest.skip("the stack does not use the local Finexer sandbox")
    location = ConsentPage(link["consent_url"]).decide("approve")
    sandbox.force_status(link["consent_id"], "pending")
    html_page(anonymous.call("GET", "/callback", path=callback_path(location)), 409)


def test_the_callback_ignores_a_bearer_token(api):
    """Public route: a token neither helps nor hurts."""
    html_page(api.call("GET", "/callback", path="/callback?fx_consent=bc_unknown&state=not-a-jwt"), 400)
    html_page(api.call("GET", "/callback", path="/callback?fx_consent=bc_unknown"), 200)


WEBHOOK_EVENT = {
    "id": "evt_contract_test",
    "object": "event",
    "type": "consent.authorized",
    "created_at": "2026-11-25T10:00:00Z",
    "data": {"object": {"id": "bc_unknown", "object": "consent", "status": "authorized"}},
}


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=deadbeef",
        "t=2026-11-25T10:00:00Z",
        "t=not-a-time;s=" + "0" * 64,
        "t={now};s=" + "0" * 64,
        "t={now};s=" + "g" * 64,
    ],
    ids=["missing", "empty", "other-scheme", "no-s", "bad-t", "wrong-secret", "not-hex"],
)
def test_webhook_401_without_a_valid_signature(anonymous, signature):
    """Public, but only Finexer's signature gets an event in; the answer is
    the same problem whatever is wrong with it."""
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["fx-signature"] = signature.replace("{now}", utc_now())
    response = anonymous.call("POST", "/webhooks/finexer", data=json.dumps(WEBHOOK_EVENT), headers=headers)
    assert response.status_code == 401, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["content-type"] == "application/problem+json"


def test_webhook_ignores_a_bearer_token(api):
    """A user's token is no credential here: without a signature it is 401 all the same."""
    response = api.call(
        "POST", "/webhooks/finexer", data=json.dumps(WEBHOOK_EVENT), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401, f"{response.status_code}: {response.text[:300]}"


# The local stack's webhook secret (local/src/lib.rs LOCAL_WEBHOOK_SECRET):
# the sandbox signs with it, and so can these tests.
WEBHOOK_SECRET = os.environ.get("CONTRACT_WEBHOOK_SECRET", "whsec_local_sandbox_only")


def signed(body: bytes, secret: str = WEBHOOK_SECRET) -> dict:
    t = utc_now()
    mac = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "fx-signature": f"t={t};s={mac}"}


def test_webhook_200_for_a_signed_event_about_a_consent_we_do_not_hold(anonymous):
    body = json.dumps({**WEBHOOK_EVENT, "id": f"evt_contract_{time.time_ns()}"}).encode()
    response = anonymous.call("POST", "/webhooks/finexer", data=body, headers=signed(body))
    assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"
    assert response.json() == {"received": True}


def test_webhook_200_for_a_signed_event_of_a_type_we_ignore(anonymous):
    event = {**WEBHOOK_EVENT, "id": f"evt_contract_{time.time_ns()}", "type": "payment.created"}
    body = json.dumps(event).encode()
    response = anonymous.call("POST", "/webhooks/finexer", data=body, headers=signed(body))
    assert response.status_code == 200, f"{response.status_code}: {response.text[:300]}"


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"type": "consent.expired"}', b'{"id": "evt 1", "type": "consent.expired", "data": {}}'],
    ids=["not-json", "array", "no-id", "bad-id"],
)
def test_webhook_400_for_a_signed_body_that_is_no_event(anonymous, body):
    response = anonymous.call("POST", "/webhooks/finexer", data=body, headers=signed(body))
    problem(response, 400, "bad-request")


def test_webhook_401_for_a_body_changed_after_signing(anonymous):
    body = json.dumps(WEBHOOK_EVENT).encode()
    headers = signed(body)
    response = anonymous.call("POST", "/webhooks/finexer", data=body + b" ", headers=headers)
    assert response.status_code == 401, f"{response.status_code}: {response.text[:300]}"
