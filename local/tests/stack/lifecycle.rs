//! After the journey, on the real local stack: the sandbox's signed webhooks
//! reach our route, and `/local/reconcile` runs the scheduled reconciler.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use connect_local::LOCAL_WEBHOOK_SECRET;
use finexer_sandbox::forgeries::forgeries;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_cancel_at_the_bank_shows_canceled_within_two_seconds() {
    let _timed = timed().await;
    let stack = Stack::start().await;
    let token = stack.token("alice").await;
    stack.webhooks.restore();
    let consent_id = stack.confirmed_link(&token).await;

    // A person clicks "Revoke at the bank" on the sandbox's bank page.
    let clicked = Instant::now();
    let response = stack
        .http
        .post(format!(
            "{}/bank/consents/{consent_id}/revoke",
            stack.sandbox.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    let record = loop {
        let record = stack.consent(&token, &consent_id).await;
        if record.status == ConsentStatus::Canceled || clicked.elapsed() > Duration::from_secs(2) {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        record.status,
        ConsentStatus::Canceled,
        "within 2 s: {record:?}"
    );
    assert_eq!(record.history.last().unwrap().source, ChangeSource::Webhook);
    assert!(record.revoked_at.is_some());
}

#[tokio::test]
async fn refused_webhooks_change_nothing_and_call_nobody() {
    let stack = Stack::start().await;
    let token = stack.token("alice").await;
    let consent_id = stack.confirmed_link(&token).await;
    let before = stack.consent(&token, &consent_id).await;
    let calls = stack.finexer_calls().await.len();

    let body = event("evt_forged", "consent.canceled", &consent_id);
    for (case, header, body) in forgeries(LOCAL_WEBHOOK_SECRET, &body) {
        let response = stack.webhook(&body, header.as_deref()).await;
        let answer = problem(response, 401).await;
        assert!(!format!("{answer:?}").contains("evt_forged"), "{case}");
    }
    assert_eq!(stack.consent(&token, &consent_id).await, before);
    assert_eq!(stack.finexer_calls().await.len(), calls, "no Finexer call");
}

#[tokio::test]
async fn the_same_event_twenty_times_at_once_adds_one_entry() {
    let stack = Stack::start().await;
    let token = stack.token("alice").await;
    let consent_id = stack.confirmed_link(&token).await;
    stack.bank_sets(&consent_id, "canceled").await;
    let entries = stack.consent(&token, &consent_id).await.history.len();

    let body = event("evt_twenty", "consent.canceled", &consent_id);
    let header = signed(&body);
    let answers =
        futures::future::join_all((0..20).map(|_| stack.webhook(&body, Some(&header)))).await;
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let record = stack.consent(&token, &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(record.history.len(), entries + 1);
    assert_eq!(changes_by(&record, ChangeSource::Webhook), 1);
}

#[tokio::test]
async fn a_late_authorized_event_leaves_an_expired_consent_expired() {
    let stack = Stack::start().await;
    let token = stack.token("alice").await;
    let consent_id = stack.confirmed_link(&token).await;
    stack.bank_sets(&consent_id, "expired").await;

    let expired = event("evt_expired", "consent.expired", &consent_id);
    let late = event("evt_late_authorized", "consent.authorized", &consent_id);
    for body in [expired, late] {
        let response = stack.webhook(&body, Some(&signed(&body))).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let record = stack.consent(&token, &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Expired, "{record:?}");
}

#[tokio::test]
async fn a_closed_tab_is_recorded_then_revoked_after_the_window() {
    let stack = Stack::start().await;
    let token = stack.token("alice").await;
    let (consent_id, _) = stack.link(&token).await;
    // Approved at the bank; the tab is closed before the redirect.
    stack.decide(&consent_id, Decision::Approve).await;

    // Past the state's lifetime (900 s): no callback can come any more.
    let report = stack.reconcile(json!({"at": in_seconds(901)})).await;
    assert_eq!(report.changed, 1, "{report:?}");
    let record = stack.consent(&token, &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Authorized);
    assert_eq!(record.confirmed_at, None);
    assert_eq!(changes_by(&record, ChangeSource::Reconcile), 1);
    let (status, _) = stack
        .api(&token, "GET", &format!("/consents/{consent_id}/accounts"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "never served unconfirmed");

    // Past the confirmation window (600 s) as well.
    let report = stack.reconcile(json!({"at": in_seconds(901 + 601)})).await;
    assert_eq!(report.changed, 1, "{report:?}");
    let record = stack.consent(&token, &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(record.revoke_reason.as_deref(), Some("unconfirmed"));
    assert_eq!(stack.finexer_status(&consent_id).await, "canceled");
}

#[tokio::test]
async fn a_revoke_during_a_finexer_outage_is_finished_by_the_next_run() {
    let stack = Stack::start().await;
    let token = stack.token("alice").await;
    let consent_id = stack.confirmed_link(&token).await;

    stack.finexer.cut().await;
    let (status, _) = stack
        .api(&token, "POST", &format!("/consents/{consent_id}/revoke"))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        stack.consent(&token, &consent_id).await.status,
        ConsentStatus::RevokePending
    );
    stack.finexer.restore();

    let report = stack.reconcile(json!({"at": in_seconds(61)})).await;
    assert_eq!(report.changed, 1, "{report:?}");
    let record = stack.consent(&token, &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(changes_by(&record, ChangeSource::Reconcile), 1);
    assert_eq!(stack.finexer_status(&consent_id).await, "canceled");
}

#[tokio::test]
async fn two_budgeted_runs_over_many_due_records_handle_each_once() {
    // Each record costs the runs a claim, a status read, a revoke and a
    // write on moto, which applies one request at a time: 500 of them take
    // two runs well past a one-second budget, so it cuts them short.
    const RECORDS: usize = 500;
    const BUDGET_MS: u64 = 1000;
    let _flood = flood().await;
    // Eight users, 63 links each at most: their cap raised to fit.
    let stack = Stack::with(&[("MAX_PENDING_LINKS", "63")]).await;
    let mut tokens = Vec::new();
    for user in 0..8 {
        tokens.push(stack.token(&format!("alice-{user}")).await);
    }
    // A thousand journeys left at the consent page: all due once their
    // states lapse. Each id with its owner's token.
    let links = futures::stream::iter(0..RECORDS)
        .map(|i| {
            let token = &tokens[i % tokens.len()];
            let stack = &stack;
            async move { (token, stack.link(token).await.0) }
        })
        .buffer_unordered(16);
    let ids: Vec<(&String, String)> = links.collect().await;
    let at = in_seconds(901);

    let started = Instant::now();
    let run = json!({"at": at, "budget_ms": BUDGET_MS});
    let (first, second) = tokio::join!(stack.reconcile(run.clone()), stack.reconcile(run));
    let took = started.elapsed();
    // Claiming stops at the budget; records already claimed finish after.
    assert!(
        took < Duration::from_millis(BUDGET_MS) + Duration::from_secs(5),
        "{took:?}"
    );
    let reads = |calls: &[String]| {
        let mut per_consent: HashMap<String, usize> = HashMap::new();
        for call in calls {
            if let Some(id) = call.strip_prefix("GET /consents/") {
                *per_consent.entry(id.to_owned()).or_default() += 1;
            }
        }
        per_consent
    };
    let after_two = reads(&stack.finexer_calls().await);
    let processed = first.processed + second.processed;
    assert!(
        (1..RECORDS).contains(&processed),
        "the runs work until their budget stops them, before the end: {first:?} {second:?}"
    );
    assert_eq!(after_two.len(), processed, "{first:?} {second:?}");
    assert!(after_two.values().all(|&n| n == 1), "none asked twice");

    // Later runs take the rest; still nobody is asked twice.
    loop {
        let report = stack.reconcile(json!({"at": at})).await;
        if report.processed == 0 {
            break;
        }
    }
    let calls = stack.finexer_calls().await;
    let all = reads(&calls);
    assert_eq!(all.len(), RECORDS);
    assert!(all.values().all(|&n| n == 1));
    // Still pending at Finexer: abandoned, revoked once each.
    let revokes = calls.iter().filter(|c| c.ends_with("/revoke")).count();
    assert_eq!(revokes, RECORDS);
    for (token, id) in ids.iter().step_by(97) {
        let record = stack.consent(token, id).await;
        assert_eq!(record.status, ConsentStatus::Canceled, "{record:?}");
        assert_eq!(record.revoke_reason.as_deref(), Some("abandoned"));
    }
}
