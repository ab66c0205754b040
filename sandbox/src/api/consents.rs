//! Consents: create, fetch, update, revoke.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use time::Duration as TimeSpan;

use super::error::{ApiError, ApiResult};
use super::params::{FormParams, Params, QueryParams};
use crate::clock::{Timestamp, parse_date};
use crate::ids::random_id;
use crate::model::{Consent, ConsentRedirect, ConsentStatus, Metadata, Scope};
use crate::providers::find_bank;
use crate::state::SandboxState;

/// Without an `expiry_date`, access lasts 90 days from authorization (the UK rule).
pub const DEFAULT_ACCESS_PERIOD: TimeSpan = TimeSpan::days(90);

/// Fields that create and update share, parsed and checked.
#[derive(Default)]
struct ConsentFields {
    customer: Option<String>,
    return_url: Option<String>,
    provider: Option<String>,
    scopes: Vec<Scope>,
    retro_date: Option<String>,
    expiry_date: Option<Timestamp>,
    metadata: Metadata,
}

impl ConsentFields {
    fn take_from(params: &mut Params, state: &SandboxState) -> ApiResult<Self> {
        let customer = params.optional("customer")?;
        if let Some(id) = &customer
            && state.store.customer(id).is_none()
        {
            return Err(ApiError::bad_request(
                "resource_missing",
                format!("No such customer: '{id}'."),
            ));
        }
        let return_url = params
            .optional("return_url")?
            .map(check_return_url)
            .transpose()?;
        let provider = params.optional("provider")?;
        if let Some(id) = &provider
            && find_bank(id).is_none()
        {
            return Err(ApiError::invalid_parameter(
                "provider",
                &format!("unknown provider '{id}'"),
            ));
        }
        let scopes = params
            .list("scopes")
            .iter()
            .map(|text| {
                Scope::parse(text).ok_or_else(|| {
                    ApiError::invalid_parameter(
                        "scopes[]",
                        &format!("unknown scope '{text}' (accounts, balance, transactions)"),
                    )
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let retro_date = params.optional("retro_date")?;
        if let Some(text) = &retro_date {
            let date = parse_date(text)
                .ok_or_else(|| ApiError::invalid_parameter("retro_date", "expected YYYY-MM-DD"))?;
            if date > Timestamp::now().date() {
                return Err(ApiError::invalid_parameter(
                    "retro_date",
                    "must not be in the future",
                ));
            }
        }
        let expiry_date = params
            .optional("expiry_date")?
            .map(|text| {
                let at = Timestamp::parse_lenient(&text).ok_or_else(|| {
                    ApiError::invalid_parameter(
                        "expiry_date",
                        "expected YYYY-MM-DD or an ISO-8601 time",
                    )
                })?;
                if at <= Timestamp::now() {
                    return Err(ApiError::invalid_parameter(
                        "expiry_date",
                        "must be in the future",
                    ));
                }
                Ok(at)
            })
            .transpose()?;
        let metadata = params.map("metadata")?;
        Ok(Self {
            customer,
            return_url,
            provider,
            scopes,
            retro_date,
            expiry_date,
            metadata,
        })
    }
}

fn check_return_url(text: String) -> ApiResult<String> {
    match url::Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(text),
        _ => Err(ApiError::invalid_parameter(
            "return_url",
            "expected an absolute http(s) URL",
        )),
    }
}

fn deduplicated(scopes: Vec<Scope>) -> Vec<Scope> {
    Scope::ALL
        .into_iter()
        .filter(|scope| scopes.contains(scope))
        .collect()
}

pub async fn create(
    State(state): State<SandboxState>,
    FormParams(mut params): FormParams,
) -> ApiResult<Json<Consent>> {
    let fields = ConsentFields::take_from(&mut params, &state)?;
    params.finish()?;

    let id = random_id("bc");
    let now = Timestamp::now();
    let consent_link = format!(
        "{}{}/{id}",
        state.public_base_url,
        crate::pages::PAGE_PREFIX
    );
    let scopes = if fields.scopes.is_empty() {
        Scope::ALL.to_vec()
    } else {
        deduplicated(fields.scopes)
    };
    // The guide: without a customer the consent is `new` and cannot be opened yet.
    let status = if fields.customer.is_some() {
        ConsentStatus::Pending
    } else {
        ConsentStatus::New
    };
    let consent = Consent {
        id,
        object: "consent".into(),
        created_at: now,
        updated_at: now,
        renewed_at: None,
        provider_chosen_by_api: fields.provider.is_some(),
        provider: fields.provider,
        customer: fields.customer,
        consent_link: consent_link.clone(),
        failure_code: None,
        failure_message: None,
        expiry_date: fields.expiry_date,
        retro_date: fields.retro_date,
        scopes,
        authed_at: None,
        status,
        redirect: ConsentRedirect {
            return_url: fields.return_url,
            consent_url: consent_link,
        },
        metadata: fields.metadata,
        authorized_instant: None,
    };
    state.store.insert_consent(consent.clone());
    Ok(Json(consent))
}

pub async fn fetch(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams,
) -> ApiResult<Json<Consent>> {
    params.finish()?;
    state
        .store
        .consent(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("consent", &id))
}

pub async fn update(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    FormParams(mut params): FormParams,
) -> ApiResult<Json<Consent>> {
    let fields = ConsentFields::take_from(&mut params, &state)?;
    let renewed_at = params
        .optional("renewed_at")?
        .map(|text| {
            Timestamp::parse_lenient(&text).ok_or_else(|| {
                ApiError::invalid_parameter("renewed_at", "expected YYYY-MM-DD or an ISO-8601 time")
            })
        })
        .transpose()?;
    params.finish()?;

    let changes_more_than_metadata = fields.customer.is_some()
        || fields.return_url.is_some()
        || fields.provider.is_some()
        || !fields.scopes.is_empty()
        || fields.retro_date.is_some()
        || fields.expiry_date.is_some()
        || renewed_at.is_some();

    state
        .store
        .update_consent(&id, |consent| {
            if consent.status.is_final() && changes_more_than_metadata {
                return Err(ApiError::bad_request(
                    "consent_inactive",
                    format!(
                        "Consent {} is {}; only its metadata can change.",
                        consent.id, consent.status
                    ),
                ));
            }
            // Only access that is live can be re-confirmed.
            if renewed_at.is_some() && consent.status != ConsentStatus::Authorized {
                return Err(not_authorized(consent));
            }
            let before_authorization =
                matches!(consent.status, ConsentStatus::New | ConsentStatus::Pending);
            if let Some(customer) = fields.customer {
                if !before_authorization && consent.customer.as_deref() != Some(customer.as_str()) {
                    return Err(ApiError::invalid_parameter(
                        "customer",
                        "cannot change once the consent is authorized",
                    ));
                }
                consent.customer = Some(customer);
                if consent.status == ConsentStatus::New {
                    consent.status = ConsentStatus::Pending;
                }
            }
            let changes_terms = fields.provider.is_some()
                || !fields.scopes.is_empty()
                || fields.retro_date.is_some();
            if changes_terms && !before_authorization {
                return Err(ApiError::bad_request(
                    "consent_authorized",
                    "provider, scopes and retro_date cannot change once the consent is authorized.",
                ));
            }
            if let Some(provider) = fields.provider {
                consent.provider = Some(provider);
                consent.provider_chosen_by_api = true;
            }
            if !fields.scopes.is_empty() {
                consent.scopes = deduplicated(fields.scopes);
            }
            if let Some(retro_date) = fields.retro_date {
                consent.retro_date = Some(retro_date);
            }
            if let Some(return_url) = fields.return_url {
                consent.redirect.return_url = Some(return_url);
            }
            if let Some(renewed) = renewed_at {
                consent.renewed_at = Some(renewed);
                // Re-confirmation restarts the 90-day access period.
                consent.expiry_date = Some(renewed.plus(DEFAULT_ACCESS_PERIOD));
            }
            if let Some(expiry) = fields.expiry_date {
                consent.expiry_date = Some(expiry);
            }
            // An empty value removes a key, as is usual for metadata maps.
            for (key, value) in fields.metadata {
                if value.is_empty() {
                    consent.metadata.remove(&key);
                } else {
                    consent.metadata.insert(key, value);
                }
            }
            Ok(())
        })?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("consent", &id))
}

pub async fn revoke(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    FormParams(params): FormParams,
) -> ApiResult<Json<Consent>> {
    params.finish()?;
    state
        .store
        .update_consent(&id, |consent| {
            // Revoking twice is harmless; a failed or expired consent keeps its status.
            if !consent.status.is_final() {
                consent.status = ConsentStatus::Canceled;
            }
            Ok::<(), ApiError>(())
        })?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("consent", &id))
}

/// The account holder withdraws access at their bank: an authorized consent
/// becomes `canceled` (and `consent.canceled` is sent); anything else is a 409.
pub fn revoke_at_bank(state: &SandboxState, id: &str) -> ApiResult<Consent> {
    state
        .store
        .update_consent(id, |consent| {
            if consent.status != ConsentStatus::Authorized {
                return Err(not_authorized(consent));
            }
            consent.status = ConsentStatus::Canceled;
            Ok(())
        })?
        .ok_or_else(|| ApiError::not_found("consent", id))
}

pub fn not_authorized(consent: &Consent) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "consent_not_authorized",
        format!(
            "Consent {} is {}; this needs an authorized consent.",
            consent.id, consent.status
        ),
    )
}

/// Marks a pending consent authorized now (consent page approval, admin shortcut).
pub fn authorize(consent: &mut Consent) {
    let now = Timestamp::now();
    consent.status = ConsentStatus::Authorized;
    consent.authed_at = Some(now);
    consent.authorized_instant = Some(Instant::now());
    consent.failure_code = None;
    consent.failure_message = None;
    if consent.expiry_date.is_none_or(|expiry| expiry <= now) {
        consent.expiry_date = Some(now.plus(DEFAULT_ACCESS_PERIOD));
    }
}
