//! Webhooks: signed events on consent status changes, delivered to a loopback receiver.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use finexer_sandbox::SandboxConfig;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::helpers::TestSandbox;

const SECRET: &str = "whsec_test_secret";

struct Delivery {
    signature: String,
    body: Bytes,
}

/// A tiny receiver on 127.0.0.1:0 passing every POST to the test.
async fn start_receiver() -> (String, mpsc::UnboundedReceiver<Delivery>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/hooks/finexer",
            post(
                |State(sender): State<mpsc::UnboundedSender<Delivery>>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let signature = headers
                        .get("fx-signature")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let _ = sender.send(Delivery { signature, body });
                    "ok"
                },
            ),
        )
        .with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/finexer", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

/// Checks `t=<ISO-8601>;s=<hex HMAC-SHA256("<t>." + body)>` and returns the event.
fn verified_event(delivery: &Delivery) -> Value {
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

async fn next_event(receiver: &mut mpsc::UnboundedReceiver<Delivery>) -> Value {
    let delivery = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .expect("a webhook arrives in time")
        .expect("receiver open");
    verified_event(&delivery)
}

#[tokio::test]
async fn status_changes_are_delivered_signed() {
    let (url, mut receiver) = start_receiver().await;
    let sandbox = TestSandbox::with(SandboxConfig {
        webhook_url: Some(url),
        webhook_secret: SECRET.into(),
        ..SandboxConfig::default()
    })
    .await;

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
