//! Finexer failing on each call each function makes: the caller gets a clear
//! 502/503, nothing is half-written, and a retry succeeds once it clears.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::journey::state_id_of;
use crate::support::*;

fn server_error() -> ResponseTemplate {
    ResponseTemplate::new(500).set_body_json(
        json!({"error": {"type": "api_error", "code": "internal", "message": "boom"}}),
    )
}

fn too_slow() -> ResponseTemplate {
    ResponseTemplate::new(200).set_delay(Duration::from_secs(3))
}

#[tokio::test]
async fn create_link_survives_finexer_failures() {
    let env = TestEnv::start().await;
    for (path, fault) in [
        ("^/customers$", server_error()),
        ("^/customers$", too_slow()),
        ("^/consents$", server_error()),
        ("^/consents$", too_slow()),
    ] {
        env.finexer_fault("POST", path, fault, None).await;
        let (status, problem) = env.create_link("alice", json!({})).await;
        assert_eq!(status, 503, "{path}: {problem}");
        assert_eq!(problem["type"], "/problems/upstream-unavailable");
        let (_, list) = env.consents("alice", "/consents").await;
        assert_eq!(list["data"], json!([]), "{path}: no consent recorded");
        env.reset_faults().await;
    }
    // No lease left behind: the next call creates the customer at once.
    let (status, body) = env.create_link("alice", json!({})).await;
    assert_eq!(status, 201, "{body}");
    let customer = env.item("USER#alice", "CUSTOMER").await.unwrap();
    assert!(customer.contains_key("customer_id"));
}

#[tokio::test]
async fn creates_are_not_retried_after_a_server_error() {
    let env = TestEnv::start().await;
    env.finexer_fault("POST", "^/consents$", server_error(), None)
        .await;
    let (status, _) = env.create_link("bob", json!({})).await;
    assert_eq!(status, 503);
    let creates = env
        .finexer_calls()
        .await
        .iter()
        .filter(|c| *c == "POST /consents")
        .count();
    assert_eq!(creates, 1, "a 500 may have created it: no blind retry");
}

#[tokio::test]
async fn reads_are_retried_and_throttling_is_passed_on() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("carol").await;
    env.finexer_state.set(&consent_id, "authorized");
    // One 500, then fine: the read is retried inside the request.
    env.finexer_fault("GET", "^/consents/", server_error(), Some(1))
        .await;
    let back = query_of(&location(
        &env.callback(&format!("fx_consent={consent_id}&state={state}"))
            .await,
    ));
    assert_eq!(back["status"], "authorized");
    let (status, _) = env.confirm("carol", &consent_id, &back["code"]).await;
    assert_eq!(status, 200);

    // A long Retry-After is handed to our caller rather than waited out.
    env.finexer_fault(
        "GET",
        "^/bank_accounts$",
        ResponseTemplate::new(429).insert_header("retry-after", "30"),
        None,
    )
    .await;
    let response = shared::handlers::consents(
        &env.app,
        request("GET", "/accounts", "", None, Some("carol")),
    )
    .await;
    assert_eq!(response.headers()["retry-after"], "30");
    let (status, _) = json_of(response);
    assert_eq!(status, 503);
}

#[tokio::test]
async fn callback_failure_leaves_the_state_usable_for_a_retry() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("dave").await;
    env.finexer_state.set(&consent_id, "authorized");
    let query = format!("fx_consent={consent_id}&state={state}");
    for fault in [server_error(), too_slow()] {
        env.finexer_fault("GET", "^/consents/", fault, None).await;
        let response = env.callback(&query).await;
        assert_eq!(html_error(&response), 503);
        assert!(response.headers().contains_key("retry-after"));
        let (_, record) = env
            .consents("dave", &format!("/consents/{consent_id}"))
            .await;
        assert_eq!(record["status"], "pending");
        let state_item = env
            .item(
                &format!("STATE#{}", state_id_of(&env, &consent_id).await),
                "STATE",
            )
            .await
            .unwrap();
        assert!(!state_item.contains_key("used_at"));
        env.reset_faults().await;
    }
    let back = location(&env.callback(&query).await);
    assert_eq!(query_of(&back)["status"], "authorized");
}

#[tokio::test]
async fn a_failed_revocation_is_recorded_and_completed_by_a_retry() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("erin").await;
    env.finexer_state.set(&consent_id, "authorized");
    location(
        &env.callback(&format!("fx_consent={consent_id}&state={state}"))
            .await,
    );

    for fault in [server_error(), too_slow()] {
        env.finexer_fault("POST", "/revoke$", fault, None).await;
        let (status, problem) = env.revoke("erin", &consent_id).await;
        assert_eq!(status, 503, "{problem}");
        let (_, record) = env
            .consents("erin", &format!("/consents/{consent_id}"))
            .await;
        assert_eq!(
            record["status"], "revoke_pending",
            "the request is remembered"
        );
        assert!(record["revoked_at"].is_null(), "no revocation claimed");
        assert!(record["revoke_requested_at"].is_string());
        env.reset_faults().await;
    }
    let (status, record) = env.revoke("erin", &consent_id).await;
    assert_eq!(status, 200);
    assert_eq!(record["status"], "canceled");
    assert!(record["revoked_at"].is_string());
}

#[tokio::test]
async fn account_reads_fail_clearly() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("fay").await;
    env.finexer_fault("GET", "^/bank_accounts$", server_error(), None)
        .await;
    let (status, problem) = env
        .consents("fay", &format!("/consents/{consent_id}/accounts"))
        .await;
    assert_eq!(status, 503, "{problem}");
    assert!(
        !problem["detail"].as_str().unwrap().contains("boom"),
        "no upstream text leaks"
    );
}

#[tokio::test]
async fn a_rejected_api_key_is_not_blamed_on_the_caller() {
    let env = TestEnv::start().await;
    env.finexer_fault(
        "POST",
        "^/customers$",
        ResponseTemplate::new(401).set_body_json(json!({"error": {
            "type": "authentication_error", "code": "invalid_api_key", "message": "bad key"}})),
        None,
    )
    .await;
    let (status, problem) = env.create_link("gus", json!({})).await;
    assert_eq!(status, 502);
    assert!(!problem.to_string().contains(API_KEY));
}

#[tokio::test]
async fn a_consent_that_cannot_be_recorded_is_revoked_at_finexer() {
    let env = TestEnv::start().await;
    let app = shared::App::new(
        env.app.config.clone(),
        Arc::new(SpyStore {
            fail_inserts: true,
            ..SpyStore::default()
        }),
        env.app.secrets.clone(),
    )
    .unwrap();
    let (status, problem) = json_of(
        shared::handlers::create_link(
            &app,
            request("POST", "/links", "", Some("{}"), Some("hank")),
        )
        .await,
    );
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "/problems/store-unavailable");
    let calls = env.finexer_calls().await;
    assert!(
        calls.contains(&"POST /consents/bc_1/revoke".to_string()),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_consent_page_on_an_unexpected_host_is_refused_and_revoked() {
    let env = TestEnv::start().await;
    let answer = consent_json("bc_elsewhere", "pending", None, "https://evil.example");
    env.finexer_fault(
        "POST",
        "^/consents$",
        ResponseTemplate::new(200).set_body_json(answer),
        None,
    )
    .await;
    let (status, problem) = env.create_link("ivan", json!({})).await;
    assert_eq!(status, 502, "{problem}");
    assert!(
        !problem.to_string().contains("evil.example"),
        "the URL is not repeated"
    );
    assert!(
        env.finexer_calls()
            .await
            .contains(&"POST /consents/bc_elsewhere/revoke".to_owned()),
        "the consent is not left live at Finexer"
    );
    assert!(
        env.item("CONSENT#bc_elsewhere", "CONSENT").await.is_none(),
        "nothing recorded"
    );
}

#[tokio::test]
async fn a_thousand_failed_revokes_leave_a_small_item_and_a_later_revoke_works() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("ursula").await;
    env.finexer_fault("POST", "/revoke$", server_error(), None)
        .await;
    for _ in 0..1000 {
        let (status, _) = env.revoke("ursula", &consent_id).await;
        assert_eq!(status, 503);
    }
    let item = env
        .item(&format!("CONSENT#{consent_id}"), "CONSENT")
        .await
        .unwrap();
    let size = format!("{item:?}").len();
    assert!(size < 16 * 1024, "the item stays small: ~{size} bytes");
    env.reset_faults().await;
    let (status, record) = env.revoke("ursula", &consent_id).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "canceled");
    let sources: Vec<&str> = record["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        [
            "pending",
            "authorized",
            "authorized",
            "revoke_pending",
            "canceled"
        ]
    );
}
