//! The webhook function: what it refuses, and what a genuine event changes.

use finexer_sandbox::forgeries::signed_at;
use serde_json::json;
use shared::consent::ConsentStatus;
use shared::store::ChangeSource;
use time::OffsetDateTime;

use crate::support::*;

fn event_body(id: &str, kind: &str, consent_id: &str) -> String {
    json!({
        "id": id, "object": "event", "type": kind, "created_at": "2026-11-29T10:00:00Z",
        "data": {"object": {"id": consent_id, "object": "consent", "status": "canceled"}}
    })
    .to_string()
}

fn signed(body: &str) -> String {
    signed_at(WEBHOOK_SECRET, OffsetDateTime::now_utc(), body.as_bytes())
}

/// Sources of the record's history, oldest first.
async fn sources(env: &TestEnv, consent_id: &str) -> Vec<ChangeSource> {
    env.record(consent_id)
        .await
        .history
        .iter()
        .map(|entry| entry.source)
        .collect()
}

#[tokio::test]
async fn a_cancel_at_the_bank_cancels_the_record() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("alice").await;
    env.finexer_says(&consent_id, AtFinexer::Canceled).await;

    let body = event_body("evt_bank_cancel", "consent.canceled", &consent_id);
    let (status, answer) = env.webhook(&body, Some(&signed(&body))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"received": true}));

    let record = env.record(&consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert!(record.milestones.revoked_at.is_some());
    assert_eq!(record.due_at, None, "nothing left for the reconciler");
    assert_eq!(
        sources(&env, &consent_id).await.last(),
        Some(&ChangeSource::Webhook)
    );
    let view = env.view("alice", &consent_id).await;
    assert_eq!(view.status, ConsentStatus::Canceled);
}

#[tokio::test]
async fn every_unverifiable_webhook_is_a_401_that_changes_nothing() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("alice").await;
    env.finexer_says(&consent_id, AtFinexer::Canceled).await;
    let before = env.record(&consent_id).await;
    let calls_before = env.finexer_calls().await.len();
    let items_before = env.item_count().await;

    let body = event_body("evt_refused", "consent.canceled", &consent_id);
    let cases = finexer_sandbox::forgeries::forgeries(WEBHOOK_SECRET, body.as_bytes());
    for (case, header, body) in cases {
        let body = String::from_utf8(body).unwrap();
        let (status, answer) = env.webhook(&body, header.as_deref()).await;
        assert_eq!(status, 401, "{case}: {answer}");
        assert_eq!(answer["type"], "/problems/unauthorized", "{case}");
        assert!(
            !answer.to_string().contains("evt_refused"),
            "{case}: nothing is echoed"
        );
    }
    assert_eq!(env.record(&consent_id).await, before);
    assert_eq!(
        env.finexer_calls().await.len(),
        calls_before,
        "no Finexer call"
    );
    assert_eq!(env.item_count().await, items_before, "nothing stored");
}

#[tokio::test]
async fn twenty_deliveries_at_once_add_one_history_entry() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("alice").await;
    env.finexer_says(&consent_id, AtFinexer::Canceled).await;
    let entries_before = env.record(&consent_id).await.history.len();

    let body = event_body("evt_twenty", "consent.canceled", &consent_id);
    let header = signed(&body);
    let read = format!("GET /consents/{consent_id}");
    let count_reads = |calls: Vec<String>| calls.iter().filter(|call| **call == read).count();
    let reads_before = count_reads(env.finexer_calls().await);
    let answers =
        futures::future::join_all((0..20).map(|_| env.webhook(&body, Some(&header)))).await;
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
    }
    let record = env.record(&consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(record.history.len(), entries_before + 1);
    let reads = count_reads(env.finexer_calls().await) - reads_before;
    assert_eq!(reads, 1, "one delivery was handled, 19 were redeliveries");
}

#[tokio::test]
async fn a_late_authorized_event_does_not_undo_an_expiry() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("alice").await;

    env.finexer_says(&consent_id, AtFinexer::Expired).await;
    let expired = event_body("evt_expired", "consent.expired", &consent_id);
    assert_eq!(env.webhook(&expired, Some(&signed(&expired))).await.0, 200);
    assert_eq!(env.record(&consent_id).await.status, ConsentStatus::Expired);

    // Even if Finexer's answer were stale and said authorized.
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;
    let late = event_body("evt_late", "consent.authorized", &consent_id);
    assert_eq!(env.webhook(&late, Some(&signed(&late))).await.0, 200);
    let record = env.record(&consent_id).await;
    assert_eq!(record.status, ConsentStatus::Expired);
    assert_eq!(
        sources(&env, &consent_id).await.last(),
        Some(&ChangeSource::Webhook)
    );
}

#[tokio::test]
async fn unknown_types_and_consents_are_acknowledged_and_write_nothing() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("alice").await;
    let items_before = env.item_count().await;
    let calls_before = env.finexer_calls().await.len();

    let unknown_type = event_body("evt_new_kind", "payment.settled", &consent_id);
    let unknown_consent = event_body("evt_not_ours", "consent.canceled", "bc_not_ours");
    for body in [unknown_type, unknown_consent] {
        let (status, answer) = env.webhook(&body, Some(&signed(&body))).await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(env.item_count().await, items_before);
    assert_eq!(env.finexer_calls().await.len(), calls_before);

    // Signed, but not an event: the sender's mistake, a 400.
    for body in ["[]", "{\"id\": \"evt_1\"}", "not json"] {
        let (status, answer) = env.webhook(body, Some(&signed(body))).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
}

#[tokio::test]
async fn a_base64_body_is_verified_as_the_bytes_it_encodes() {
    use base64::Engine;
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("alice").await;
    env.finexer_says(&consent_id, AtFinexer::Canceled).await;
    let body = event_body("evt_b64", "consent.canceled", &consent_id);

    let mut event = event("POST", "/webhooks/finexer", "", None, None);
    event["body"] = base64::engine::general_purpose::STANDARD
        .encode(&body)
        .into();
    event["isBase64Encoded"] = true.into();
    event["headers"]["fx-signature"] = signed(&body).into();
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let (status, answer) = json_of(shared::handlers::webhook(&env.app, request).await);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        env.record(&consent_id).await.status,
        ConsentStatus::Canceled
    );
}

#[tokio::test]
async fn an_expiry_reminder_is_recorded() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("alice").await;
    let entries_before = env.record(&consent_id).await.history.len();
    let body = event_body("evt_remind", "reminder.consent_expiry.sent", &consent_id);
    assert_eq!(env.webhook(&body, Some(&signed(&body))).await.0, 200);
    let record = env.record(&consent_id).await;
    assert!(record.milestones.expiry_reminder_at.is_some());
    assert_eq!(record.status, ConsentStatus::Authorized);
    assert_eq!(record.history.len(), entries_before, "no status change");
    let view = env.view("alice", &consent_id).await;
    assert_eq!(
        view.expiry_reminder_at,
        record.milestones.expiry_reminder_at
    );
}

#[tokio::test]
async fn an_event_that_cannot_be_handled_now_is_handled_when_redelivered() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("alice").await;
    env.finexer_says(&consent_id, AtFinexer::Canceled).await;
    env.finexer_faults(&[failing("GET", "/consents/", 503)])
        .await;
    let body = event_body("evt_retry", "consent.canceled", &consent_id);
    let (status, answer) = env.webhook(&body, Some(&signed(&body))).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(
        env.record(&consent_id).await.status,
        ConsentStatus::Authorized
    );

    env.reset_faults().await;
    env.finexer_says(&consent_id, AtFinexer::Canceled).await;
    let (status, _) = env.webhook(&body, Some(&signed(&body))).await;
    assert_eq!(status, 200);
    assert_eq!(
        env.record(&consent_id).await.status,
        ConsentStatus::Canceled
    );
}

#[tokio::test]
async fn an_approval_is_left_to_the_callback_while_its_state_lives() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("alice").await;
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;
    let body = event_body("evt_early", "consent.authorized", &consent_id);
    assert_eq!(env.webhook(&body, Some(&signed(&body))).await.0, 200);
    assert_eq!(env.record(&consent_id).await.status, ConsentStatus::Pending);

    // The callback still hands the owner the code, and it confirms.
    let code = env.approve(&consent_id, &state).await;
    let (status, view) = env.confirm("alice", &consent_id, &code).await;
    assert_eq!(status, 200, "{view}");
}
