//! Test controls under `/_sandbox/`, a prefix Finexer's API never uses.
//! No auth: the sandbox only listens on loopback.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::consents::{authorize, not_authorized, revoke_at_bank};
use crate::api::error::{ApiError, ApiResult};
use crate::faults::{FaultRule, RuleReport};
use crate::model::{Consent, ConsentStatus};
use crate::mutations::Mutations;
use crate::providers::find_bank;
use crate::request_log::{Concurrency, LoggedRequest};
use crate::state::SandboxState;
use crate::webhooks::{DeliveryAttempt, EXPIRY_REMINDER, OutgoingEvent, Webhooks};

pub const ADMIN_PREFIX: &str = "/_sandbox";

pub fn routes() -> Router<SandboxState> {
    Router::new()
        .route("/_sandbox/health", get(health))
        .route(
            "/_sandbox/faults",
            get(list_faults).post(set_faults).delete(clear_faults),
        )
        .route(
            "/_sandbox/requests",
            get(list_requests).delete(clear_requests),
        )
        .route("/_sandbox/requests/concurrency", get(concurrency))
        .route("/_sandbox/consents", get(list_consents))
        .route("/_sandbox/consents/{id}", get(peek_consent))
        .route("/_sandbox/consents/{id}/status", post(force_status))
        .route("/_sandbox/consents/{id}/cancel", post(cancel_at_bank))
        .route("/_sandbox/consents/{id}/remind", post(remind_of_expiry))
        .route(
            "/_sandbox/webhooks",
            get(list_webhooks).delete(clear_webhooks),
        )
        .route(
            "/_sandbox/webhooks/{event_id}/redeliver",
            post(redeliver_webhook),
        )
        .route(
            "/_sandbox/mutations",
            get(get_mutations)
                .post(set_mutations)
                .delete(clear_mutations),
        )
}

async fn get_mutations(State(state): State<SandboxState>) -> Json<Mutations> {
    Json(state.mutations.get())
}

/// Replaces the mutations: answers that differ from Finexer's on purpose.
async fn set_mutations(
    State(state): State<SandboxState>,
    body: Bytes,
) -> ApiResult<Json<Mutations>> {
    let mutations: Mutations = parse_json(&body)?;
    state.mutations.set(mutations.clone());
    Ok(Json(mutations))
}

async fn clear_mutations(State(state): State<SandboxState>) -> StatusCode {
    state.mutations.set(Mutations::default());
    StatusCode::NO_CONTENT
}

/// The answer of `GET /_sandbox/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"`.
    pub status: String,
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// The body of `POST /_sandbox/faults` (`R` = `FaultRule`) and the answer of
/// both fault endpoints (`R` = `RuleReport`, the rule with its counters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRules<R> {
    pub rules: Vec<R>,
}

async fn list_faults(State(state): State<SandboxState>) -> Json<FaultRules<RuleReport>> {
    Json(FaultRules {
        rules: state.faults.report(),
    })
}

/// Replaces all rules (and their counters).
async fn set_faults(
    State(state): State<SandboxState>,
    body: Bytes,
) -> ApiResult<Json<FaultRules<RuleReport>>> {
    let FaultRules { rules } = parse_json::<FaultRules<FaultRule>>(&body)?;
    for (index, rule) in rules.iter().enumerate() {
        rule.validate().map_err(|why| {
            ApiError::bad_request("invalid_fault_rule", format!("rules[{index}]: {why}."))
        })?;
    }
    state.faults.replace(rules);
    Ok(Json(FaultRules {
        rules: state.faults.report(),
    }))
}

async fn clear_faults(State(state): State<SandboxState>) -> StatusCode {
    state.faults.clear();
    StatusCode::NO_CONTENT
}

/// The answer of the admin logs (`requests`, `webhooks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Log<T> {
    pub count: usize,
    pub data: Vec<T>,
}

impl<T> From<Vec<T>> for Log<T> {
    fn from(data: Vec<T>) -> Self {
        Self {
            count: data.len(),
            data,
        }
    }
}

async fn list_requests(State(state): State<SandboxState>) -> Json<Log<LoggedRequest>> {
    Json(state.requests.entries().into())
}

/// API requests in flight now, and the most at once since the log was cleared.
async fn concurrency(State(state): State<SandboxState>) -> Json<Concurrency> {
    Json(state.requests.concurrency())
}

async fn clear_requests(State(state): State<SandboxState>) -> StatusCode {
    state.requests.clear();
    StatusCode::NO_CONTENT
}

/// The body of `POST /_sandbox/consents/{id}/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForcedStatus {
    /// A Finexer consent status (`authorized`, `failed`...).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// The bank the account holder chose, for a consent created without one
    /// (only with `authorized`, as on the consent page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

impl ForcedStatus {
    pub fn new(status: ConsentStatus) -> Self {
        Self {
            status: status.as_str().to_owned(),
            failure_code: None,
            failure_message: None,
            provider: None,
        }
    }
}

/// `GET /_sandbox/consents?status=`: the filter of [`list_consents`].
#[derive(Debug, Deserialize)]
struct ConsentFilter {
    status: Option<ConsentStatus>,
}

/// Every consent the sandbox holds (in one status, if `status` is given), in
/// creation order, without touching the request log: what a load test
/// created without keeping the ids (the benchmark's callbacks).
async fn list_consents(
    State(state): State<SandboxState>,
    axum::extract::Query(filter): axum::extract::Query<ConsentFilter>,
) -> Json<Vec<Consent>> {
    Json(
        state
            .store
            .consents_where(|c| filter.status.is_none_or(|status| c.status == status)),
    )
}

/// The consent as the sandbox holds it: no request-log entry, no fault, no
/// mutation, so a test can look without changing what it measures.
async fn peek_consent(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Consent>> {
    state
        .store
        .consent(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("consent", &id))
}

/// Moves a consent to a status without the consent page, e.g. `failed` or
/// `expired`, which a person cannot produce by clicking.
async fn force_status(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Consent>> {
    let forced: ForcedStatus = parse_json(&body)?;
    let status = ConsentStatus::parse(&forced.status).ok_or_else(|| {
        ApiError::invalid_parameter("status", "expected a Finexer consent status")
    })?;
    if let Some(provider) = &forced.provider {
        if status != ConsentStatus::Authorized {
            return Err(ApiError::invalid_parameter(
                "provider",
                "a bank is chosen only with status authorized",
            ));
        }
        if find_bank(provider).is_none() {
            return Err(ApiError::invalid_parameter(
                "provider",
                &format!("unknown provider '{provider}'"),
            ));
        }
    }
    state
        .store
        .update_consent(&id, |consent| {
            if status == ConsentStatus::Authorized {
                if let Some(provider) = forced.provider {
                    consent.provider = Some(provider);
                }
                authorize(consent);
            } else {
                consent.status = status;
            }
            if forced.failure_code.is_some() || forced.failure_message.is_some() {
                consent.failure_code = forced.failure_code;
                consent.failure_message = forced.failure_message;
            }
            Ok::<(), ApiError>(())
        })?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("consent", &id))
}

/// What the account holder's bank does on "revoke": the same as the button on `/bank`.
async fn cancel_at_bank(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Consent>> {
    revoke_at_bank(&state, &id).map(Json)
}

/// Sends `reminder.consent_expiry.sent` for an authorized consent now.
async fn remind_of_expiry(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryAttempt>> {
    let webhooks = enabled_webhooks(&state)?;
    let consent = state
        .store
        .consent(&id)
        .ok_or_else(|| ApiError::not_found("consent", &id))?;
    if consent.status != ConsentStatus::Authorized {
        return Err(not_authorized(&consent));
    }
    let event = OutgoingEvent::new(EXPIRY_REMINDER, &consent.id, &consent);
    Ok(Json(webhooks.send(event).await))
}

async fn list_webhooks(State(state): State<SandboxState>) -> Json<Log<DeliveryAttempt>> {
    let attempts = state
        .webhooks
        .as_ref()
        .map(|webhooks| webhooks.attempts())
        .unwrap_or_default();
    Json(attempts.into())
}

async fn clear_webhooks(State(state): State<SandboxState>) -> StatusCode {
    if let Some(webhooks) = &state.webhooks {
        webhooks.clear_attempts();
    }
    StatusCode::NO_CONTENT
}

/// Sends a sent event again and answers its first attempt (retries follow as usual).
async fn redeliver_webhook(
    State(state): State<SandboxState>,
    Path(event_id): Path<String>,
) -> ApiResult<Json<DeliveryAttempt>> {
    enabled_webhooks(&state)?
        .redeliver(&event_id)
        .await
        .map(Json)
        .ok_or_else(|| ApiError::not_found("event", &event_id))
}

fn enabled_webhooks(state: &SandboxState) -> ApiResult<&std::sync::Arc<Webhooks>> {
    state.webhooks.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "webhooks_disabled",
            "This sandbox has no webhook URL (SANDBOX_WEBHOOK_URL).",
        )
    })
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|why| ApiError::bad_request("invalid_json", format!("Invalid JSON body: {why}.")))
}
