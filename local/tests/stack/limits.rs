//! Limits for a public deployment, on the real local stack: the cap on a
//! user's pending links, abandoned links closed, confirmed consents looked
//! at daily, `GET /accounts`' bounded fan-out and masked account numbers.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

fn consents_created(calls: &[String]) -> usize {
    calls.iter().filter(|c| *c == "POST /consents").count()
}

#[tokio::test]
async fn the_sixth_pending_link_is_refused_until_one_has_an_outcome() {
    let stack = Stack::start().await;
    let token = stack.token("capped").await;
    let mut links = Vec::new();
    for _ in 0..5 {
        links.push(stack.link(&token).await.0);
    }
    let response = stack.create_link(&token, json!({})).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let refused = problem(response, 429).await;
    assert_eq!(refused.kind, "/problems/too-many-pending-links");
    assert!(refused.detail.contains('5'), "{refused:?}");
    // Until the first link's state lapses (STATE_TTL_SECONDS, 900).
    assert!((800..=900).contains(&retry_after), "{retry_after}");
    assert_eq!(
        consents_created(&stack.finexer_calls().await),
        5,
        "a refused link creates nothing at Finexer"
    );
    // Another user is not held back.
    let other = stack.token("not-capped").await;
    stack.link(&other).await;

    // One link denied at the bank: its place is free again.
    let callback = stack.decide(&links[0], Decision::Deny).await;
    assert_eq!(stack.get(&callback).await.status(), StatusCode::SEE_OTHER);
    stack.link(&token).await;
    problem(stack.create_link(&token, json!({})).await, 429).await;
    // A revoked one frees its place too.
    let (status, _) = stack
        .api(&token, "POST", &format!("/consents/{}/revoke", links[1]))
        .await;
    assert_eq!(status, StatusCode::OK);
    stack.link(&token).await;
    problem(stack.create_link(&token, json!({})).await, 429).await;
}

#[tokio::test]
async fn fifty_concurrent_links_of_one_user_never_pass_five_pending() {
    let _flood = flood().await;
    // Production's timeout: fifty requests at once on two cores are slow.
    let stack = &Stack::with(&[("FINEXER_TIMEOUT_MS", "5000")]).await;
    let token = &stack.token("flooder").await;
    let answers = join_all((0..50).map(|_| async move {
        stack
            .create_link(token, json!({"provider": "sandbox-barclays"}))
            .await
            .status()
            .as_u16()
    }))
    .await;
    let created = answers.iter().filter(|s| **s == 201).count();
    let refused = answers.iter().filter(|s| **s == 429).count();
    assert_eq!((created, refused), (5, 45), "{answers:?}");
    let consents: Vec<ConsentView> = stack.list(token, "/consents").await;
    let pending = consents
        .iter()
        .filter(|c| c.status == ConsentStatus::Pending)
        .count();
    assert_eq!(pending, 5);
    assert_eq!(consents_created(&stack.finexer_calls().await), 5);
}

#[tokio::test]
async fn a_lapsed_pending_link_is_revoked_after_exactly_one_status_read() {
    let stack = Stack::start().await;
    let token = stack.token("leaver").await;
    let (left, _) = stack.link(&token).await;
    let (failed, _) = stack.link(&token).await;
    // The bank failed the second; its webhook never comes (cut).
    stack.bank_sets(&failed, "failed").await;
    let admin = stack.sandbox.admin();
    admin.clear_requests().await.unwrap();

    // While the states live nothing is due.
    let early = stack.reconcile(json!({"at": in_seconds(600)})).await;
    assert_eq!(early.processed, 0, "{early:?}");
    // Past the state's lifetime (900 s): asked once each.
    let report = stack.reconcile(json!({"at": in_seconds(901)})).await;
    assert_eq!((report.processed, report.changed), (2, 2), "{report:?}");
    let mut calls = stack.finexer_calls().await;
    calls.sort();
    let mut expected = vec![
        format!("GET /consents/{left}"),
        format!("GET /consents/{failed}"),
        format!("POST /consents/{left}/revoke"),
    ];
    expected.sort();
    assert_eq!(
        calls, expected,
        "one read each, one revoke for the abandoned"
    );

    let record = stack.consent(&token, &left).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(record.revoke_reason.as_deref(), Some("abandoned"));
    assert!(record.revoked_at.is_some());
    assert_eq!(changes_by(&record, ChangeSource::Reconcile), 1);
    let at_finexer = admin.consent(&left).await.unwrap();
    assert_eq!(at_finexer.status.as_str(), "canceled");
    assert_eq!(
        stack.consent(&token, &failed).await.status,
        ConsentStatus::Failed
    );

    // Nothing more is asked about either, a week on.
    let week = stack.reconcile(json!({"at": in_seconds(7 * 86_400)})).await;
    assert_eq!(week.processed, 0, "{week:?}");
    assert_eq!(stack.finexer_calls().await.len(), 3);
}

#[tokio::test]
async fn a_bank_revocation_whose_webhook_never_came_is_recorded_within_a_day() {
    let stack = Stack::start().await;
    let token = stack.token("quiet").await;
    let consent_id = stack.confirmed_link(&token).await;
    // Revoked at the bank; the webhook route is cut, so no event arrives.
    stack.bank_sets(&consent_id, "canceled").await;
    assert_eq!(
        stack.consent(&token, &consent_id).await.status,
        ConsentStatus::Authorized
    );
    stack.sandbox.admin().clear_requests().await.unwrap();

    let report = stack.reconcile(json!({"at": in_seconds(86_400)})).await;
    assert_eq!(report.changed, 1, "{report:?}");
    let record = stack.consent(&token, &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert!(record.revoked_at.is_some());
    assert_eq!(
        record.history.last().unwrap().source,
        ChangeSource::Reconcile
    );
    assert_eq!(
        stack.finexer_calls().await,
        [format!("GET /consents/{consent_id}")],
        "one read"
    );
}

#[tokio::test]
async fn a_confirmed_consent_is_asked_about_once_a_day() {
    let stack = Stack::start().await;
    let token = stack.token("steady").await;
    let consent_id = stack.confirmed_link(&token).await;
    stack.sandbox.admin().clear_requests().await.unwrap();
    // Each day, one run at every quarter hour would find it due once.
    for day in 1..=2 {
        let mut reads = 0;
        for quarter in 0..96 {
            let at = in_seconds((day - 1) * 86_400 + quarter * 900 + 900);
            reads += stack.reconcile(json!({ "at": at })).await.processed;
        }
        assert_eq!(reads, 1, "day {day}");
    }
    assert_eq!(stack.finexer_calls().await.len(), 2);
    assert_eq!(
        stack.consent(&token, &consent_id).await.status,
        ConsentStatus::Authorized
    );
}

/// Identification fields of the accounts `GET /accounts` answered.
fn identifications(body: &serde_json::Value, field: &str) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["identification"][field].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn all_accounts_over_thirty_consents_has_at_most_eight_calls_in_flight() {
    let stack = Stack::with(&[("ACCOUNT_DATA_ENABLED", "true")]).await;
    let token = stack.token("many-banks").await;
    for _ in 0..30 {
        stack.confirmed_link(&token).await;
    }
    // Slow answers, so that calls overlap if they can.
    stack
        .fault(json!({"method": "GET", "path_prefix": "/bank_accounts", "latency_ms": 100}))
        .await;
    let admin = stack.sandbox.admin();
    admin.clear_requests().await.unwrap();

    let (status, body) = stack.api(&token, "GET", "/accounts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["truncated"], false);
    assert_eq!(body["omitted_consents"], json!([]));
    let calls = stack.finexer_calls().await;
    assert_eq!(calls.len(), 30, "{calls:?}");
    assert!(calls.iter().all(|c| c == "GET /bank_accounts"));
    let peak = admin.concurrency().await.unwrap().peak;
    assert!(
        (2..=8).contains(&peak),
        "at most 8 at once, and at once: {peak}"
    );

    // Masked by default: last four characters only.
    let numbers = identifications(&body, "account_number");
    assert!(!numbers.is_empty());
    for number in numbers.iter().chain(&identifications(&body, "iban")) {
        assert!(number.starts_with("****"), "{number}");
        assert!(number.len() <= 8, "{number}");
    }
}

#[tokio::test]
async fn account_numbers_are_served_whole_when_configured() {
    let stack = Stack::with(&[
        ("ACCOUNT_DATA_ENABLED", "true"),
        ("ACCOUNT_NUMBERS", "full"),
    ])
    .await;
    let token = stack.token("full-numbers").await;
    let consent_id = stack.confirmed_link(&token).await;
    let (status, body) = stack
        .api(&token, "GET", &format!("/consents/{consent_id}/accounts"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let numbers = identifications(&body, "account_number");
    assert!(!numbers.is_empty());
    assert!(
        numbers.iter().all(|n| !n.contains('*') && n.len() > 4),
        "{numbers:?}"
    );
}

#[tokio::test]
async fn one_consents_account_numbers_are_masked_by_default() {
    let stack = Stack::with(&[("ACCOUNT_DATA_ENABLED", "true")]).await;
    let token = stack.token("masked-numbers").await;
    let consent_id = stack.confirmed_link(&token).await;
    let (status, body) = stack
        .api(&token, "GET", &format!("/consents/{consent_id}/accounts"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let numbers = identifications(&body, "account_number");
    assert!(!numbers.is_empty());
    assert!(numbers.iter().all(|n| n.starts_with("****")), "{numbers:?}");
}
