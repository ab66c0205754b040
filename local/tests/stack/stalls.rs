//! Backends that accept a connection and never answer: every request still
//! answers 503 within the invocation's time, and what it started is finished.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

/// Generous bounds: the point is "answers before Lambda's cut-off", not speed.
const STORE_BOUND: Duration = Duration::from_secs(8);

#[tokio::test]
async fn a_stalled_dynamodb_gives_503s_in_time_and_leaves_nothing_live() {
    let _timed = timed().await;
    let stack = Stack::with(&[("STORE_TIMEOUT_MS", "1000")]).await;
    let token = stack.token("stella").await;
    stack.link(&token).await; // the customer is known from here on
    stack.dynamo.stall().await;

    let started = Instant::now();
    let (status, _) = stack.api(&token, "GET", "/consents").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < STORE_BOUND, "{:?}", started.elapsed());

    // The user's pending place cannot be taken: nothing is created at
    // Finexer (a write failing after the create revokes it: shared's API
    // tests).
    let calls_before = stack.finexer_calls().await.len();
    let started = Instant::now();
    let response = stack.create_link(&token, json!({})).await;
    assert!(started.elapsed() < STORE_BOUND, "{:?}", started.elapsed());
    assert!(response.headers().contains_key("retry-after"));
    problem(response, 503).await;
    let calls = stack.finexer_calls().await;
    let since = &calls[calls_before..];
    assert!(!since.iter().any(|c| c == "POST /consents"), "{since:?}");

    stack.dynamo.restore();
    let (status, _) = stack.api(&token, "GET", "/consents").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_stalled_finexer_gives_503s_in_time_and_a_retry_finishes() {
    let _timed = timed().await;
    let stack = Stack::start().await;
    let token = stack.token("fiona").await;
    let consent_id = stack.confirmed_link(&token).await;
    stack.finexer.stall().await;

    let started = Instant::now();
    let (status, _) = stack
        .api(&token, "POST", &format!("/consents/{consent_id}/revoke"))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < STORE_BOUND, "{:?}", started.elapsed());
    assert_eq!(
        stack.consent(&token, &consent_id).await.status,
        ConsentStatus::RevokePending,
        "the request is recorded"
    );

    stack.finexer.restore();
    let (status, record) = stack
        .api(&token, "POST", &format!("/consents/{consent_id}/revoke"))
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    let record: ConsentView = serde_json::from_value(record).expect("a ConsentView");
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(stack.finexer_status(&consent_id).await, "canceled");
}

#[tokio::test]
async fn the_invocations_time_bounds_a_finexer_slower_than_its_timeout() {
    let _timed = timed().await;
    // Finexer's own timeout (60 s) is longer than the whole invocation (6 s):
    // the request's budget cuts the call, and the answer comes in time.
    let stack = Stack::with(&[
        ("FINEXER_TIMEOUT_MS", "60000"),
        ("LOCAL_TIMEOUT_MS", "6000"),
    ])
    .await;
    let token = stack.token("tess").await;
    stack.finexer.stall().await;
    let started = Instant::now();
    let response = stack.create_link(&token, json!({})).await;
    let took = started.elapsed();
    assert!(response.headers().contains_key("retry-after"));
    problem(response, 503).await;
    assert!(took < Duration::from_secs(6), "answered after {took:?}");
}
