//! The browser-binding cookie (RFC 9700 §2.1) from create-link to callback.

use lambda_http::{Body, Response};

use crate::support::*;

/// create-link as the browser sees it: the consent id, the cookie it was
/// given (`name=value`) and the state sent to Finexer.
async fn link_with_cookie(env: &TestEnv, user: &str) -> (String, String, String) {
    let response = shared::handlers::create_link(
        &env.app,
        request("POST", "/links", "", Some("{}"), Some(user)),
    )
    .await;
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, body) = json_of(response);
    assert_eq!(status, 201);
    for attribute in [
        "__Host-fx_bind=",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
    ] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} lacks {attribute}"
        );
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let consent_id = body["consent_id"].as_str().unwrap().to_owned();
    let state = env.state_sent_to_finexer(&consent_id).await;
    env.finexer_state.set(&consent_id, "authorized");
    (consent_id, cookie, state)
}

fn clears_cookie(response: &Response<Body>) -> bool {
    response.headers().get_all("set-cookie").iter().any(|v| {
        v.to_str().unwrap().starts_with("__Host-fx_bind=;")
            && v.to_str().unwrap().contains("Max-Age=0")
    })
}

#[tokio::test]
async fn the_same_browser_completes_and_its_cookie_is_cleared() {
    let env = TestEnv::start().await;
    let (consent_id, cookie, state) = link_with_cookie(&env, "alice").await;
    let response = env
        .callback_with_cookie(&format!("fx_consent={consent_id}&state={state}"), &cookie)
        .await;
    assert_eq!(query_of(&location(&response))["status"], "authorized");
    assert!(clears_cookie(&response));
}

#[tokio::test]
async fn a_different_cookie_is_always_refused() {
    let env = TestEnv::start().await;
    let (consent_id, _, state) = link_with_cookie(&env, "alice").await;
    let (_, attacker_cookie, _) = link_with_cookie(&env, "mallory").await;
    for query in [
        format!("fx_consent={consent_id}&state={state}"),
        format!("fx_consent={consent_id}&state={state}&error=access_denied"),
    ] {
        let response = env.callback_with_cookie(&query, &attacker_cookie).await;
        assert_eq!(html_error(&response), 400, "{query}");
    }
    let (_, record) = env
        .consents("alice", &format!("/consents/{consent_id}"))
        .await;
    assert_eq!(record["status"], "pending");
}

#[tokio::test]
async fn a_missing_cookie_is_tolerated_by_default() {
    let env = TestEnv::start().await;
    let (consent_id, _, state) = link_with_cookie(&env, "alice").await;
    let response = env
        .callback(&format!("fx_consent={consent_id}&state={state}"))
        .await;
    assert_eq!(query_of(&location(&response))["status"], "authorized");
}

#[tokio::test]
async fn a_missing_cookie_is_refused_when_required() {
    let env = TestEnv::with(Options {
        browser_binding: "require",
        ..Options::default()
    })
    .await;
    let (consent_id, cookie, state) = link_with_cookie(&env, "alice").await;
    let query = format!("fx_consent={consent_id}&state={state}");
    assert_eq!(html_error(&env.callback(&query).await), 400);
    let (_, record) = env
        .consents("alice", &format!("/consents/{consent_id}"))
        .await;
    assert_eq!(record["status"], "pending", "nothing changed");
    let response = env.callback_with_cookie(&query, &cookie).await;
    assert_eq!(query_of(&location(&response))["status"], "authorized");
}
