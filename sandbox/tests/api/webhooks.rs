//! Webhooks: signed events on consent status changes, delivered to a loopback receiver.

use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use finexer_sandbox::SandboxConfig;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;

use finexer_sandbox::api::error::ErrorType;
use finexer_sandbox::client::AdminError;
use finexer_sandbox::model::ConsentStatus;
use finexer_sandbox::webhooks::DeliveryAttempt;

use crate::helpers::TestSandbox;

pub const SECRET: &str = "whsec_test_secret";

pub struct Delivery {
    signature: String,
    body: Bytes,
}

/// A tiny receiver on 127.0.0.1:0 passing every POST to the test; it answers
/// the first `failures` with 500.
pub async fn start_receiver_failing(
    failures: usize,
) -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let refusals = Arc::new(AtomicUsize::new(failures));
    let app = Router::new().route(
        "/hooks/finexer",
        post(move |headers: HeaderMap, body: Bytes| async move {
            let signature = headers
                .get("fx-signature")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let _ = sender.send(Delivery { signature, body });
            let refuse = refusals
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
            if refuse {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/finexer", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

pub async fn start_receiver() -> (String, mpsc::UnboundedReceiver<Delivery>) {
    start_receiver_failing(0).await
}

/// Checks `t=<ISO-8601>;s=<hex HMAC-SHA256("<t>." + body)>` and returns the event.
pub fn verified_event(delivery: &Delivery) -> Value {
    let (t_part, s_part) = delivery.signature.split_once(';').expect("t=...;s=...");
    let timestamp = t_part.strip_prefix("t=").expect("t=");
    let signature = s_part.strip_prefix("s=").expect("s=");
    time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
        .expect("ISO-8601 timestamp");
    assert!(timestamp.ends_with('Z'), "UTC: {timestamp}");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&delivery.body);
    mac.verify_slice(&hex::decode(signature).expect("hex signature"))
        .expect("signature verifies with the secret");
    serde_json::from_slice(&delivery.body).expect("JSON event")
}

pub async fn next_event(receiver: &mut mpsc::UnboundedReceiver<Delivery>) -> Value {
    let delivery = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .expect("a webhook arrives in time")
        .expect("receiver open");
    verified_event(&delivery)
}

#[tokio::test]
async fn approving_without_following_the_redirect_delivers_signed_events() {
    let (url, mut receiver) = start_receiver().await;
    let sandbox = TestSandbox::with(SandboxConfig {
        webhook_url: Some(url),
        webhook_secret: SECRET.into(),
        ..SandboxConfig::default()
    })
    .await;

    // The helper's client never follows the 303, like a tab closed at the bank.
    let consent = sandbox.authorized_consent(&[]).await;
    let first = next_event(&mut receiver).await;
    assert_eq!(
        first["type"], "consent.authorized",
        "the consent event comes first"
    );
    assert!(first["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(first["object"], "event");
    assert_eq!(first["data"]["object"]["id"], consent["id"]);
    assert_eq!(first["data"]["object"]["status"], "authorized");
    let account_event = next_event(&mut receiver).await;
    assert_eq!(account_event["type"], "bank_account.created");
    assert_eq!(account_event["data"]["object"]["consent"], consent["id"]);
    assert!(
        account_event["data"]["object"]["id"]
            .as_str()
            .unwrap()
            .starts_with("ba_")
    );

    // Drain the remaining account events, then revoke.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), receiver.recv()).await
    {
    }
    let id = consent["id"].as_str().unwrap();
    sandbox
        .post_json_answer(&format!("/consents/{id}/revoke"), &[])
        .await;
    let canceled = next_event(&mut receiver).await;
    assert_eq!(canceled["type"], "consent.canceled");
    assert_eq!(canceled["data"]["object"]["status"], "canceled");
}

#[tokio::test]
async fn webhooks_only_go_to_loopback_and_need_a_secret() {
    let outside = finexer_sandbox::start(SandboxConfig {
        webhook_url: Some("https://hooks.example.com/finexer".into()),
        webhook_secret: SECRET.into(),
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(
        outside.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );
    let unsigned = finexer_sandbox::start(SandboxConfig {
        webhook_url: Some("http://127.0.0.1:9/hook".into()),
        ..SandboxConfig::default()
    })
    .await;
    assert_eq!(
        unsigned.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );
}

async fn with_webhooks(url: String) -> TestSandbox {
    TestSandbox::with(SandboxConfig {
        webhook_url: Some(url),
        webhook_secret: SECRET.into(),
        ..SandboxConfig::default()
    })
    .await
}

impl TestSandbox {
    async fn delivery_log(&self) -> Vec<DeliveryAttempt> {
        self.admin.webhooks().await.unwrap()
    }

    /// A pending consent forced to `failed`: exactly one event, `consent.failed`.
    async fn failed_consent(&self) -> String {
        let consent = self.pending_consent(&[]).await;
        let id = consent["id"].as_str().unwrap().to_owned();
        let forced = self
            .admin
            .set_status(&id, ConsentStatus::Failed)
            .await
            .unwrap();
        assert_eq!(forced.status, ConsentStatus::Failed);
        id
    }
}

/// A refusal in Finexer's error shape, as the typed admin client reports it.
fn assert_refused(error: &AdminError, status: StatusCode, code: &str) {
    let AdminError::Refused(refusal) = error else {
        panic!("a refusal, got {error}");
    };
    assert_eq!((refusal.status, refusal.code.as_str()), (status, code));
    assert_eq!(refusal.error_type, ErrorType::Request);
    assert!(!refusal.message.is_empty());
}

async fn drain(receiver: &mut mpsc::UnboundedReceiver<Delivery>) {
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), receiver.recv()).await
    {
    }
}

/// (attempt, status, has error) of each logged attempt of `event_id`.
fn attempts_of(log: &[DeliveryAttempt], event_id: &str) -> Vec<(usize, Option<u16>, bool)> {
    log.iter()
        .filter(|entry| entry.event_id == event_id)
        .map(|entry| (entry.attempt, entry.status, entry.error.is_some()))
        .collect()
}

#[tokio::test]
async fn a_refused_delivery_is_retried_and_every_attempt_logged() {
    let (url, mut receiver) = start_receiver_failing(2).await;
    let sandbox = with_webhooks(url).await;
    let id = sandbox.failed_consent().await;

    let deliveries = [
        next_event(&mut receiver).await,
        next_event(&mut receiver).await,
        next_event(&mut receiver).await,
    ];
    for event in &deliveries {
        assert_eq!(event, &deliveries[0], "the same event each time");
    }
    assert_eq!(deliveries[0]["type"], "consent.failed");
    let log = sandbox.delivery_log().await;
    assert_eq!(
        attempts_of(&log, deliveries[0]["id"].as_str().unwrap()),
        [
            (1, Some(500), false),
            (2, Some(500), false),
            (3, Some(200), false)
        ]
    );
    let first = &log[0];
    assert_eq!(first.event_type, "consent.failed");
    assert_eq!(first.consent_id, id);
    assert!(!first.redelivery);
    assert!(first.at.to_string().ends_with('Z'));

    sandbox.admin.clear_webhooks().await.unwrap();
    assert!(sandbox.delivery_log().await.is_empty());
}

#[tokio::test]
async fn an_unreachable_receiver_gets_four_attempts_then_none() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let sandbox = with_webhooks(url).await;
    sandbox.failed_consent().await;

    // 0.5 + 1 + 2 s of waits between the attempts.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let log = sandbox.delivery_log().await;
    assert_eq!(
        attempts_of(&log, &log[0].event_id),
        [
            (1, None, true),
            (2, None, true),
            (3, None, true),
            (4, None, true)
        ]
    );
}

#[tokio::test]
async fn redelivery_sends_the_same_event_freshly_signed() {
    let (url, mut receiver) = start_receiver().await;
    let sandbox = with_webhooks(url).await;
    sandbox.failed_consent().await;
    let original = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .unwrap()
        .unwrap();
    let event = verified_event(&original);

    // A new signature needs a new second in its timestamp.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let event_id = event["id"].as_str().unwrap();
    let attempt = sandbox.admin.redeliver(event_id).await.unwrap();
    assert_eq!(
        (
            attempt.event_id.as_str(),
            attempt.redelivery,
            attempt.status
        ),
        (event_id, true, Some(200))
    );
    let again = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .unwrap()
        .unwrap();
    verified_event(&again);
    assert_eq!(again.body, original.body);
    assert_ne!(again.signature, original.signature);

    let unknown = sandbox.admin.redeliver("evt_unknown").await.unwrap_err();
    assert_refused(&unknown, StatusCode::NOT_FOUND, "resource_missing");
}

#[tokio::test]
async fn a_revoke_at_the_bank_cancels_and_is_announced_within_two_seconds() {
    let (url, mut receiver) = start_receiver().await;
    let sandbox = with_webhooks(url).await;
    let consent = sandbox.authorized_consent(&[]).await;
    let (id, customer) = (
        consent["id"].as_str().unwrap(),
        consent["customer"].as_str().unwrap(),
    );
    drain(&mut receiver).await;

    let (status, page) = sandbox.page(&format!("/bank?customer={customer}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!(
        r#"id="revoke-{id}" data-consent-id="{id}">Revoke at the bank</button>"#
    )));

    let clicked = Instant::now();
    let (status, location, _) = sandbox
        .submit(
            &format!("/bank/consents/{id}/revoke"),
            &[("customer", customer)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.unwrap(), format!("/bank?customer={customer}"));
    let canceled = next_event(&mut receiver).await;
    assert!(clicked.elapsed() < Duration::from_secs(2));
    assert_eq!(canceled["type"], "consent.canceled");
    assert_eq!(canceled["data"]["object"]["id"], id);
    let (_, fetched) = sandbox.get_json(&format!("/consents/{id}")).await;
    assert_eq!(fetched["status"], "canceled");

    let (_, page) = sandbox.page("/bank").await;
    assert!(page.contains(&format!(r#"data-consent-id="{id}" data-status="canceled""#)));
    assert!(!page.contains("Revoke at the bank"));
    let (status, _, _) = sandbox
        .submit(&format!("/bank/consents/{id}/revoke"), &[])
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let refused = sandbox.admin.cancel_at_bank(id).await.unwrap_err();
    assert_refused(&refused, StatusCode::CONFLICT, "consent_not_authorized");
}

#[tokio::test]
async fn the_admin_cancel_and_the_expiry_reminder_send_their_events() {
    let (url, mut receiver) = start_receiver().await;
    let sandbox = with_webhooks(url).await;
    let consent = sandbox.authorized_consent(&[]).await;
    let id = consent["id"].as_str().unwrap();
    drain(&mut receiver).await;

    let attempt = sandbox.admin.remind_of_expiry(id).await.unwrap();
    assert_eq!(attempt.status, Some(200));
    let reminder = next_event(&mut receiver).await;
    assert_eq!(reminder["type"], "reminder.consent_expiry.sent");
    assert_eq!(reminder["id"], attempt.event_id.as_str());
    assert_eq!(
        reminder["data"]["object"]["expiry_date"],
        consent["expiry_date"]
    );

    let canceled = sandbox.admin.cancel_at_bank(id).await.unwrap();
    assert_eq!(canceled.status, ConsentStatus::Canceled);
    assert_eq!(next_event(&mut receiver).await["type"], "consent.canceled");

    let refused = sandbox.admin.remind_of_expiry(id).await.unwrap_err();
    assert_refused(&refused, StatusCode::CONFLICT, "consent_not_authorized");
}

#[tokio::test]
async fn without_a_webhook_url_the_log_is_empty_and_redelivery_refused() {
    let sandbox = TestSandbox::start().await;
    sandbox.authorized_consent(&[]).await;
    assert!(sandbox.delivery_log().await.is_empty());
    let refused = sandbox.admin.redeliver("evt_1").await.unwrap_err();
    assert_refused(&refused, StatusCode::CONFLICT, "webhooks_disabled");
}
