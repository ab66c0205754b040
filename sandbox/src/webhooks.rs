//! Webhook delivery: one POST per consent status change (and per account once
//! accounts appear), signed the way Finexer signs, fire-and-forget.

use std::net::IpAddr;
use std::sync::Weak;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
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
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

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
    id: String,
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

/// Delivers events for the consents announced on `changes` until the store is gone.
pub fn spawn_dispatcher(
    target: WebhookTarget,
    store: Weak<Store>,
    accounts_delay: Duration,
    mut changes: UnboundedReceiver<Consent>,
) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(DELIVERY_TIMEOUT)
        .build()
        .unwrap_or_default();
    tokio::spawn(async move {
        while let Some(consent) = changes.recv().await {
            let Some(event_type) = consent_event_type(consent.status) else {
                continue;
            };
            deliver(&client, &target, event_type, &consent).await;
            // After the consent event, as accounts follow authorization.
            if consent.status == ConsentStatus::Authorized {
                schedule_account_events(&client, &target, &store, &consent, accounts_delay);
            }
        }
    });
}

/// `bank_account.created` for each account, once the accounts are visible.
fn schedule_account_events(
    client: &reqwest::Client,
    target: &WebhookTarget,
    store: &Weak<Store>,
    consent: &Consent,
    delay: Duration,
) {
    let customer_name = store
        .upgrade()
        .and_then(|store| store.customer(consent.customer.as_deref()?))
        .map(|customer| customer.name);
    let accounts = accounts_for(consent, customer_name.as_deref());
    let (client, target) = (client.clone(), target.clone());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        for account in &accounts {
            deliver(&client, &target, "bank_account.created", account).await;
        }
    });
}

async fn deliver(
    client: &reqwest::Client,
    target: &WebhookTarget,
    event_type: &str,
    object: &impl Serialize,
) {
    let event = Event {
        id: random_id("evt"),
        object: "event",
        event_type,
        created_at: Timestamp::now(),
        data: EventData {
            object: serde_json::to_value(object).unwrap_or(Value::Null),
        },
    };
    let Ok(body) = serde_json::to_vec(&event) else {
        return;
    };
    let timestamp = Timestamp::now().to_string();
    let signature = signature_header(&target.secret, &timestamp, &body);
    let outcome = client
        .post(target.url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    // Fire-and-forget: a failed delivery is logged, not retried.
    match outcome {
        Ok(response) if response.status().is_success() => {
            tracing::debug!(event = event_type, id = %event.id, "webhook delivered");
        }
        Ok(response) => {
            tracing::warn!(event = event_type, status = %response.status(), "webhook refused");
        }
        Err(why) => tracing::warn!(event = event_type, error = %why, "webhook delivery failed"),
    }
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
