//! Webhook delivery: one POST per consent status change (and per account once
//! accounts appear), signed the way Finexer signs. A failed attempt (non-2xx or
//! no answer) is retried a few times; every attempt is logged for tests
//! (`/_sandbox/webhooks`), and a sent event can be delivered again.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use axum::body::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc::UnboundedReceiver;
use url::{Host, Url};

use crate::accounts::accounts_for;
use crate::clock::Timestamp;
use crate::ids::random_id;
use crate::model::{Consent, ConsentStatus};
use crate::store::Store;

pub const SIGNATURE_HEADER: &str = "fx-signature";
pub const EXPIRY_REMINDER: &str = "reminder.consent_expiry.sent";
/// The longest one hung receiver can hold up the first attempts queued behind it.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Waits before the retries of a failed delivery (Finexer retries every few
/// seconds; shorter here so tests stay quick).
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
/// Bounds of the delivery log and of the events kept for redelivery.
const MAX_LOGGED_ATTEMPTS: usize = 10_000;
const MAX_KEPT_EVENTS: usize = 1_000;

/// Hex HMAC-SHA256 over `"<timestamp>." + body`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `fx-signature` header value: `t=<ISO-8601 UTC>;s=<hex>`.
pub fn signature_header(secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!("t={timestamp};s={}", sign(secret, timestamp, body))
}

#[derive(Debug, Serialize)]
struct Event<'a> {
    id: &'a str,
    object: &'static str,
    #[serde(rename = "type")]
    event_type: &'a str,
    created_at: Timestamp,
    data: EventData,
}

#[derive(Debug, Serialize)]
struct EventData {
    object: Value,
}

/// An event as sent: its body is fixed once, so a redelivery is byte-identical.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    pub id: String,
    pub event_type: &'static str,
    pub consent_id: String,
    body: Bytes,
}

impl OutgoingEvent {
    pub fn new(event_type: &'static str, consent_id: &str, object: &impl Serialize) -> Self {
        let id = random_id("evt");
        let event = Event {
            id: &id,
            object: "event",
            event_type,
            created_at: Timestamp::now(),
            data: EventData {
                object: serde_json::to_value(object).unwrap_or(Value::Null),
            },
        };
        // Serialising a `Value` tree into memory cannot fail.
        let body = serde_json::to_vec(&event).unwrap_or_default();
        Self {
            id,
            event_type,
            consent_id: consent_id.to_owned(),
            body: body.into(),
        }
    }
}

/// One delivery attempt, as `GET /_sandbox/webhooks` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: Cow<'static, str>,
    pub consent_id: String,
    /// 1 for the first attempt of a delivery, counting up through its retries.
    pub attempt: usize,
    /// Sent through `/_sandbox/webhooks/{event_id}/redeliver`.
    pub redelivery: bool,
    /// The receiver's HTTP status; null when it did not answer.
    pub status: Option<u16>,
    /// Why there is no status (connection refused, timeout); null otherwise.
    pub error: Option<String>,
    pub at: Timestamp,
}

impl DeliveryAttempt {
    pub fn succeeded(&self) -> bool {
        self.status
            .is_some_and(|status| (200..300).contains(&status))
    }
}

/// The webhook sender of one sandbox: the target, its client, what was sent.
pub struct Webhooks {
    target: WebhookTarget,
    client: reqwest::Client,
    attempts: Mutex<VecDeque<DeliveryAttempt>>,
    sent: Mutex<VecDeque<OutgoingEvent>>,
}

impl Webhooks {
    /// Builds the sender and starts delivering the consents announced on
    /// `changes` until the store is gone.
    pub fn start(
        target: WebhookTarget,
        store: Weak<Store>,
        accounts_delay: Duration,
        changes: UnboundedReceiver<Consent>,
    ) -> Result<Arc<Self>, String> {
        let webhooks = Arc::new(Self {
            target,
            client: delivery_client()?,
            attempts: Mutex::default(),
            sent: Mutex::default(),
        });
        tokio::spawn(webhooks.clone().dispatch(store, accounts_delay, changes));
        Ok(webhooks)
    }

    /// First attempts go out one at a time, in the order of the changes, so a
    /// healthy receiver sees `consent.authorized` before its accounts.
    async fn dispatch(
        self: Arc<Self>,
        store: Weak<Store>,
        accounts_delay: Duration,
        mut changes: UnboundedReceiver<Consent>,
    ) {
        while let Some(consent) = changes.recv().await {
            let Some(event_type) = consent_event_type(consent.status) else {
                continue;
            };
            self.send(OutgoingEvent::new(event_type, &consent.id, &consent))
                .await;
            if consent.status == ConsentStatus::Authorized {
                self.schedule_account_events(&store, &consent, accounts_delay);
            }
        }
    }

    /// `bank_account.created` for each account, once the accounts are visible.
    fn schedule_account_events(
        self: &Arc<Self>,
        store: &Weak<Store>,
        consent: &Consent,
        delay: Duration,
    ) {
        let customer_name = store
            .upgrade()
            .and_then(|store| store.customer(consent.customer.as_deref()?))
            .map(|customer| customer.name);
        let accounts = accounts_for(consent, customer_name.as_deref());
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            for account in &accounts {
                this.send(OutgoingEvent::new(
                    "bank_account.created",
                    &account.consent,
                    account,
                ))
                .await;
            }
        });
    }

    /// Delivers a new event: answers the first attempt, retries in the background.
    pub async fn send(self: &Arc<Self>, event: OutgoingEvent) -> DeliveryAttempt {
        {
            let mut sent = lock(&self.sent);
            if sent.len() == MAX_KEPT_EVENTS {
                sent.pop_front();
            }
            sent.push_back(event.clone());
        }
        self.deliver(event, false).await
    }

    /// Sends a sent event again (same id and body, a fresh signature);
    /// `None` if it is unknown.
    pub async fn redeliver(self: &Arc<Self>, event_id: &str) -> Option<DeliveryAttempt> {
        let event = lock(&self.sent)
            .iter()
            .find(|event| event.id == event_id)
            .cloned()?;
        Some(self.deliver(event, true).await)
    }

    pub fn attempts(&self) -> Vec<DeliveryAttempt> {
        lock(&self.attempts).iter().cloned().collect()
    }

    pub fn clear_attempts(&self) {
        lock(&self.attempts).clear();
    }

    async fn deliver(self: &Arc<Self>, event: OutgoingEvent, redelivery: bool) -> DeliveryAttempt {
        let first = self.attempt(&event, 1, redelivery).await;
        if !first.succeeded() {
            let this = self.clone();
            tokio::spawn(async move {
                for (index, delay) in RETRY_DELAYS.into_iter().enumerate() {
                    tokio::time::sleep(delay).await;
                    if this
                        .attempt(&event, index + 2, redelivery)
                        .await
                        .succeeded()
                    {
                        break;
                    }
                }
            });
        }
        first
    }

    async fn attempt(
        &self,
        event: &OutgoingEvent,
        number: usize,
        redelivery: bool,
    ) -> DeliveryAttempt {
        let at = Timestamp::now();
        let timestamp = at.to_string();
        let outcome = self
            .client
            .post(self.target.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                signature_header(&self.target.secret, &timestamp, &event.body),
            )
            .body(event.body.clone())
            .send()
            .await;
        let (status, error) = match outcome {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(why) => (None, Some(why.to_string())),
        };
        let attempt = DeliveryAttempt {
            event_id: event.id.clone(),
            event_type: event.event_type.into(),
            consent_id: event.consent_id.clone(),
            attempt: number,
            redelivery,
            status,
            error,
            at,
        };
        if attempt.succeeded() {
            tracing::debug!(event = event.event_type, id = %event.id, "webhook delivered");
        } else {
            tracing::warn!(event = event.event_type, id = %event.id, attempt = number, status = ?attempt.status, error = ?attempt.error, "webhook not accepted");
        }
        let mut attempts = lock(&self.attempts);
        if attempts.len() == MAX_LOGGED_ATTEMPTS {
            attempts.pop_front();
        }
        attempts.push_back(attempt.clone());
        attempt
    }
}

/// Only the event types Finexer documents; `new → pending` sends nothing.
fn consent_event_type(status: ConsentStatus) -> Option<&'static str> {
    match status {
        ConsentStatus::Authorized => Some("consent.authorized"),
        ConsentStatus::Canceled => Some("consent.canceled"),
        ConsentStatus::Expired => Some("consent.expired"),
        ConsentStatus::Failed => Some("consent.failed"),
        ConsentStatus::New | ConsentStatus::Pending => None,
    }
}

/// Where events go. Only loopback URLs are accepted: the sandbox must never
/// call anything outside this machine.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    url: Url,
    secret: String,
}

impl WebhookTarget {
    pub fn new(url: &str, secret: &str) -> Result<Self, String> {
        let url =
            Url::parse(url).map_err(|why| format!("webhook URL {url:?} is not a URL: {why}"))?;
        let loopback = match url.host() {
            Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        };
        if !loopback || !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "webhook URL {url} must be http(s) on a loopback address"
            ));
        }
        if secret.is_empty() {
            return Err("a webhook URL needs a webhook secret to sign with".to_owned());
        }
        Ok(Self {
            url,
            secret: secret.to_owned(),
        })
    }
}

fn delivery_client() -> Result<reqwest::Client, String> {
    crate::client::http_client(ATTEMPT_TIMEOUT)
        .map_err(|why| format!("cannot build the webhook client: {why}"))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_dot_body() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec").unwrap();
        mac.update(b"2026-01-01T00:00:00Z.{\"id\":\"evt_1\"}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            sign("whsec", "2026-01-01T00:00:00Z", b"{\"id\":\"evt_1\"}"),
            expected
        );
        assert_eq!(
            signature_header("whsec", "2026-01-01T00:00:00Z", b"{\"id\":\"evt_1\"}"),
            format!("t=2026-01-01T00:00:00Z;s={expected}")
        );
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(WebhookTarget::new("http://127.0.0.1:9/hook", "s").is_ok());
        assert!(WebhookTarget::new("http://localhost:9/hook", "s").is_ok());
        assert!(WebhookTarget::new("https://example.com/hook", "s").is_err());
        assert!(WebhookTarget::new("http://127.0.0.1:9/hook", "").is_err());
    }
}
