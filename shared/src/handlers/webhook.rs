//! `POST /webhooks/finexer`: Finexer's events. Public: the `fx-signature`
//! over the exact body is its only credential, so nothing is read from the
//! body before it verifies.
//!
//! An event is a hint, never the truth: the consent is read from Finexer and
//! what Finexer says now is applied ([`super::follow`]). Each event id is
//! handled once (a conditional put, kept for [`EVENT_RETENTION`]); a
//! redelivery is acknowledged and changes nothing. When handling fails the
//! id is forgotten and a 503 asks Finexer to deliver it again.

use lambda_http::{Body, Request, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::checked_id;
use super::follow::{Followed, follow};
use crate::app::App;
use crate::error::{Error, Result};
use crate::http::json_response;
use crate::store::{ChangeSource, ConsentRecord, Guard, Transition};
use crate::timestamp::Timestamp;
use crate::webhook::{DEFAULT_TOLERANCE, SIGNATURE_HEADER, verify_signature};

/// How long a handled event's id is remembered: past Finexer's retries
/// (about 10 attempts, seconds apart) with room to spare.
pub const EVENT_RETENTION: time::Duration = time::Duration::days(3);
/// Larger bodies are refused unread: a real event is a few KiB.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// What became of a verified delivery, the `Verdict` of its metric.
mod verdict {
    /// Acted on.
    pub const HANDLED: &str = "handled";
    /// A redelivery of an event handled before.
    pub const DUPLICATE: &str = "duplicate";
    /// A type we do not act on, or a signed body that is not an event.
    pub const IGNORED: &str = "ignored";
    /// About a consent we do not hold.
    pub const UNKNOWN_CONSENT: &str = "unknown_consent";
    /// Not handled (503): Finexer delivers it again.
    pub const FAILED: &str = "failed";
}

pub async fn webhook(app: &App, request: Request) -> Response<Body> {
    // The event's type once the delivery is verified (`other` until read).
    let mut event_type = None;
    let handled = crate::deadline::guard(handle(app, request, &mut event_type)).await;
    let verdict = match &handled {
        Ok(verdict) => Some(*verdict),
        Err(Error::Unauthorized) => {
            crate::metrics::count(crate::metrics::WEBHOOK_REFUSED, &[]);
            None
        }
        Err(Error::BadRequest(_)) => Some(verdict::IGNORED),
        Err(_) => Some(verdict::FAILED),
    };
    if let (Some(event_type), Some(verdict)) = (event_type, verdict) {
        crate::metrics::count(
            crate::metrics::WEBHOOK_EVENT,
            &[("EventType", event_type), ("Verdict", verdict)],
        );
    }
    handled
        .and_then(|_| received())
        .unwrap_or_else(Error::into_problem_response)
}

/// The event types the `EventType` dimension names; any other is `other`.
const EVENT_TYPES: [&str; 6] = [
    "consent.authorized",
    "consent.canceled",
    "consent.expired",
    "consent.failed",
    "bank_account.created",
    "reminder.consent_expiry.sent",
];

fn event_type_name(kind: &str) -> &'static str {
    EVENT_TYPES
        .iter()
        .find(|known| **known == kind)
        .copied()
        .unwrap_or("other")
}

/// The envelope: `{"id", "type", "data": {"object": {...}}}`, or a flat
/// `data`, as Finexer's docs show both (docs/finexer-api.md, Webhooks).
#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

impl Event {
    fn object(&self) -> &Value {
        self.data.get("object").unwrap_or(&self.data)
    }

    /// The consent the event is about: the object itself for consent
    /// events, its `consent` for an account.
    fn consent_id(&self) -> Option<&str> {
        let object = self.object();
        match object.get("object").and_then(Value::as_str) {
            Some("consent") => object.get("id"),
            _ if self.kind.starts_with("consent.") => object.get("id"),
            _ => object.get("consent"),
        }
        .and_then(Value::as_str)
    }
}

/// What the event asks of us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Look at the consent at Finexer and follow it.
    ConsentChanged,
    /// Finexer reminded the user that the consent expires soon.
    ExpiryReminder,
    Unknown,
}

fn kind_of(event_type: &str) -> Kind {
    match event_type {
        "consent.authorized"
        | "consent.canceled"
        | "consent.expired"
        | "consent.failed"
        | "bank_account.created" => Kind::ConsentChanged,
        "reminder.consent_expiry.sent" => Kind::ExpiryReminder,
        _ => Kind::Unknown,
    }
}

/// Handles a delivery; its verdict, or the error to answer.
async fn handle(
    app: &App,
    request: Request,
    event_type: &mut Option<&'static str>,
) -> Result<&'static str> {
    let body = verified_body(app, &request).await?;
    *event_type = Some("other");
    let event: Event = serde_json::from_slice(body)
        .map_err(|_| Error::BadRequest("The event is not a Finexer event envelope.".into()))?;
    *event_type = Some(event_type_name(&event.kind));
    let event_id = checked_id(&event.id, "event id")?.to_owned();
    let kind = kind_of(&event.kind);
    if kind == Kind::Unknown {
        tracing::info!(event_id, event_type = %bounded(&event.kind), "webhook event of an unknown type ignored");
        return Ok(verdict::IGNORED);
    }
    let consent_id = event
        .consent_id()
        .ok_or_else(|| Error::BadRequest("The event names no consent.".into()))?;
    let consent_id = checked_id(consent_id, "consent id")?;
    crate::metrics::note_consent(consent_id);
    let Some(record) = app.store.consent(consent_id).await? else {
        tracing::info!(event_id, consent_id, event_type = %event.kind, "webhook event for a consent we do not hold");
        return Ok(verdict::UNKNOWN_CONSENT);
    };

    let now = Timestamp::now();
    let expires = (now + EVENT_RETENTION).unix_seconds();
    if !app.store.record_event(&event_id, expires).await? {
        tracing::info!(
            event_id,
            consent_id,
            "webhook event redelivered; already handled"
        );
        return Ok(verdict::DUPLICATE);
    }
    match apply(app, kind, record, now).await {
        Ok(()) => {
            tracing::info!(event_id, consent_id, event_type = %event.kind, "webhook event handled");
            Ok(verdict::HANDLED)
        }
        Err(e) => {
            // Forget it, so that Finexer's redelivery is handled.
            if let Err(forget) = app.store.forget_event(&event_id).await {
                tracing::error!(event_id, error = %forget, "handled-event marker not removed; the reconciler will catch up");
            }
            Err(retry_later(e))
        }
    }
}

/// The raw body, once its signature verifies under one of the webhook
/// secrets; every failure is the same 401, telling nothing.
async fn verified_body<'r>(app: &App, request: &'r Request) -> Result<&'r [u8]> {
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let header = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .ok_or(Error::Unauthorized)?;
    let secrets = app.secrets.webhook_secrets().await?;
    if secrets.webhook_secrets.is_empty() {
        tracing::error!("a webhook arrived but the secret lists no webhook_secrets; refused");
        return Err(Error::Unauthorized);
    }
    let keys: Vec<&[u8]> = secrets
        .webhook_secrets
        .iter()
        .map(|secret| secret.expose_secret().as_bytes())
        .collect();
    verify_signature(
        header,
        body,
        &keys,
        OffsetDateTime::now_utc(),
        DEFAULT_TOLERANCE,
    )
    .map_err(|why| {
        tracing::warn!(reason = %why, "webhook signature refused");
        Error::Unauthorized
    })?;
    Ok(body)
}

async fn apply(app: &App, kind: Kind, record: ConsentRecord, now: Timestamp) -> Result<()> {
    match kind {
        Kind::ConsentChanged => {
            let remote = app.finexer.get_consent(&record.consent_id).await?;
            if let Followed::Unchanged(record) =
                follow(app, record, &remote, ChangeSource::Webhook, now).await?
            {
                tracing::debug!(consent_id = %record.consent_id, status = %record.status, "nothing to record");
            }
            Ok(())
        }
        Kind::ExpiryReminder => {
            let mut noted = Transition::new(record.status.clone(), now, ChangeSource::Webhook);
            noted.set.expiry_reminder_at = Some(now);
            app.store
                .transition(
                    &record.consent_id,
                    Guard::default(),
                    std::slice::from_ref(&record.status),
                    &noted,
                )
                .await?;
            Ok(())
        }
        Kind::Unknown => Ok(()),
    }
}

fn received() -> Result<Response<Body>> {
    json_response(200, &serde_json::json!({"received": true}))
}

/// Whatever failed while handling a genuine event is ours or Finexer's to
/// fix, never the sender's: a 503 so that it is delivered again.
fn retry_later(error: Error) -> Error {
    match error {
        Error::FinexerUnavailable { .. }
        | Error::StoreUnavailable(_)
        | Error::SecretsUnavailable(_)
        | Error::OutOfTime
        | Error::Busy(_) => error,
        other => Error::FinexerUnavailable {
            detail: format!("webhook not handled: {other}"),
            retry_after: None,
        },
    }
}

/// An event type from the body, as it may appear in a log line.
fn bounded(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}
