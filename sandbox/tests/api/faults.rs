//! Fault injection: rules (start-up and `/_sandbox/faults`), the per-request header, base latency.

use std::time::{Duration, Instant};

use finexer_sandbox::api::error::ErrorType;
use finexer_sandbox::{FaultRule, SandboxConfig};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::json;

use crate::helpers::{API_KEY, TestSandbox, error_code, json_of};

async fn set_rules(sandbox: &TestSandbox, rules: &[FaultRule]) {
    let report = sandbox.admin.set_faults(rules).await.unwrap();
    let set: Vec<&FaultRule> = report.iter().map(|active| &active.rule).collect();
    assert_eq!(set, rules.iter().collect::<Vec<_>>(), "the rules as set");
    assert!(report.iter().all(|active| active.fired == 0));
}

fn on_providers() -> FaultRule {
    FaultRule {
        path_prefix: "/providers".into(),
        ..FaultRule::default()
    }
}

#[tokio::test]
async fn a_rule_answers_500_in_the_error_shape_until_cleared() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.pending_consent(&[]).await;
    let consent_path = format!("/consents/{}", consent["id"].as_str().unwrap());
    set_rules(
        &sandbox,
        &[FaultRule::failing(Some("GET"), "/consents", 500)],
    )
    .await;

    let (status, body) = sandbox.get_json(&consent_path).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&body, "api_error"), "sandbox_fault");
    // Other methods and paths are untouched.
    assert_eq!(
        sandbox.post_json_answer("/consents", &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(sandbox.get("/providers").await.status(), StatusCode::OK);

    let report = sandbox.admin.faults().await.unwrap();
    assert_eq!((report[0].matched, report[0].fired), (1, 1));

    sandbox.admin.clear_faults().await.unwrap();
    assert!(sandbox.admin.faults().await.unwrap().is_empty());
    assert_eq!(sandbox.get(&consent_path).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_429_rule_sends_retry_after_and_count_limits_it() {
    let sandbox = TestSandbox::start().await;
    set_rules(
        &sandbox,
        &[FaultRule {
            status: Some(429),
            retry_after: Some(3),
            count: Some(2),
            ..on_providers()
        }],
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
        &[FaultRule {
            status: Some(503),
            rate: 0.5,
            ..on_providers()
        }],
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
        &[FaultRule {
            latency_ms: 300,
            ..on_providers()
        }],
    )
    .await;
    let started = Instant::now();
    assert_eq!(sandbox.get("/providers").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A client timeout shorter than the injected latency fails as a timeout.
    let timed_out = sandbox
        .client
        .get(sandbox.url("/providers"))
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
    assert_eq!(sandbox.admin.health().await.unwrap().status, "ok");

    // The typed client gets the sandbox's 400 as a typed error, and nothing changes.
    let refused = sandbox
        .admin
        .set_faults(&[FaultRule {
            status: Some(200),
            ..FaultRule::default()
        }])
        .await
        .unwrap_err();
    let finexer_sandbox::client::AdminError::Refused(error) = &refused else {
        panic!("a typed refusal, got {refused}");
    };
    assert_eq!(error.status, StatusCode::BAD_REQUEST);
    assert_eq!(error.error_type, ErrorType::Request);
    assert_eq!(error.code, "invalid_fault_rule");
    assert!(error.message.contains("rules[0]"), "{}", error.message);
    assert_eq!(
        sandbox.admin.faults().await.unwrap()[0].rule,
        FaultRule::failing(None, "/", 500)
    );

    // A typed client cannot misspell a field: this one posts raw JSON.
    let misspelt = sandbox
        .client
        .post(sandbox.url("/_sandbox/faults"))
        .json(&json!({"rules": [{"stauts": 500}]}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(misspelt).await;
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
    sandbox.admin.health().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "admin calls are not slowed"
    );
}
