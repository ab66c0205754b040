//! Fault injection: rules (start-up and `/_sandbox/faults`), the per-request header, base latency.

use std::time::{Duration, Instant};

use finexer_sandbox::{FaultRule, SandboxConfig};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};

use crate::helpers::{API_KEY, TestSandbox, error_code, json_of};

async fn set_rules(sandbox: &TestSandbox, rules: Value) -> (StatusCode, Value) {
    let response = sandbox
        .client
        .post(sandbox.url("/_sandbox/faults"))
        .json(&json!({ "rules": rules }))
        .send()
        .await
        .unwrap();
    json_of(response).await
}

#[tokio::test]
async fn a_rule_answers_500_in_the_error_shape_until_cleared() {
    let sandbox = TestSandbox::start().await;
    let (status, _) = set_rules(
        &sandbox,
        json!([{"method": "GET", "path_prefix": "/consents", "status": 500, "rate": 1.0, "latency_ms": 0, "retry_after": null, "count": null}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = sandbox.get_json("/consents").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&body, "api_error"), "sandbox_fault");
    // Other methods and paths are untouched.
    assert_eq!(
        sandbox.post_json_answer("/consents", &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(sandbox.get("/providers").await.status(), StatusCode::OK);

    let (_, report) = json_of(
        sandbox
            .client
            .get(sandbox.url("/_sandbox/faults"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(report["rules"][0]["fired"], 1);

    let cleared = sandbox
        .client
        .delete(sandbox.url("/_sandbox/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert_eq!(sandbox.get("/consents").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_429_rule_sends_retry_after_and_count_limits_it() {
    let sandbox = TestSandbox::start().await;
    set_rules(
        &sandbox,
        json!([{"path_prefix": "/providers", "status": 429, "retry_after": 3, "count": 2}]),
    )
    .await;
    for _ in 0..2 {
        let response = sandbox.get("/providers").await;
        assert_eq!(response.headers()[RETRY_AFTER], "3");
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error_code(&body, "request_error"), "sandbox_fault");
    }
    assert_eq!(
        sandbox.get("/providers").await.status(),
        StatusCode::OK,
        "count exhausted"
    );
}

#[tokio::test]
async fn rate_affects_that_fraction_of_matching_requests() {
    let sandbox = TestSandbox::start().await;
    set_rules(
        &sandbox,
        json!([{"path_prefix": "/providers", "status": 503, "rate": 0.5}]),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(sandbox.get("/providers").await.status().as_u16());
    }
    assert_eq!(statuses, [200, 503, 200, 503, 200, 503]);
}

#[tokio::test]
async fn latency_rules_and_the_header_delay_answers() {
    let sandbox = TestSandbox::start().await;
    set_rules(
        &sandbox,
        json!([{"path_prefix": "/providers", "latency_ms": 300}]),
    )
    .await;
    let started = Instant::now();
    assert_eq!(sandbox.get("/providers").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A client timeout shorter than the injected latency fails as a timeout.
    let timed_out = sandbox
        .client
        .get(sandbox.url("/consents"))
        .basic_auth(API_KEY, Some(""))
        .header("x-sandbox-fault", "latency_ms=2000")
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(timed_out.unwrap_err().is_timeout());
}

#[tokio::test]
async fn the_fault_header_affects_a_single_request() {
    let sandbox = TestSandbox::start().await;
    let faulted = sandbox
        .client
        .get(sandbox.url("/providers"))
        .basic_auth(API_KEY, Some(""))
        .header("x-sandbox-fault", "status=503;retry_after=1")
        .send()
        .await
        .unwrap();
    assert_eq!(faulted.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(faulted.headers()[RETRY_AFTER], "1");
    assert_eq!(sandbox.get("/providers").await.status(), StatusCode::OK);

    let malformed = sandbox
        .client
        .get(sandbox.url("/providers"))
        .header("x-sandbox-fault", "status=ok")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "invalid_fault_header");
}

#[tokio::test]
async fn start_up_rules_apply_and_admin_endpoints_are_never_faulted() {
    let sandbox = TestSandbox::with(SandboxConfig {
        faults: vec![FaultRule::failing(None, "/", 500)],
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(
        sandbox.get("/providers").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let health = sandbox
        .client
        .get(sandbox.url("/_sandbox/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    let (status, body) = set_rules(&sandbox, json!([{"status": 200}])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "invalid_fault_rule");
    let (status, body) = set_rules(&sandbox, json!([{"stauts": 500}])).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "misspelt fields are refused"
    );
    assert_eq!(error_code(&body, "request_error"), "invalid_json");
}

#[tokio::test]
async fn base_latency_is_added_to_every_api_call() {
    let sandbox = TestSandbox::with(SandboxConfig {
        latency_ms: 150,
        ..SandboxConfig::default()
    })
    .await;
    let started = Instant::now();
    assert_eq!(sandbox.get("/providers").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = Instant::now();
    sandbox
        .client
        .get(sandbox.url("/_sandbox/health"))
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "admin calls are not slowed"
    );
}
