//! Bank accounts of authorized consents, their balances, transactions and syncs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::error::{ApiError, ApiResult};
use super::paging::{ListLocation, ListResponse, PageRequest, paginate};
use super::params::{FormParams, QueryParams};
use crate::accounts::{Balance, BankAccount, Transaction, balance_for, transactions_for};
use crate::clock::Timestamp;
use crate::model::{Consent, ConsentStatus, Scope};
use crate::state::SandboxState;

/// `GET /bank_accounts?customer=...&consent=...`; `customer` is required.
pub async fn list(
    State(state): State<SandboxState>,
    QueryParams(mut params): QueryParams,
) -> ApiResult<Json<ListResponse<BankAccount>>> {
    let customer = params.optional("customer")?;
    let consent_id = params.optional("consent")?;
    let page = PageRequest::take_from(&mut params)?;
    params.finish()?;
    let Some(customer) = customer else {
        return Err(ApiError::bad_request(
            "missing_identity",
            "A customer is required to list bank accounts: pass customer=<id>.",
        ));
    };

    let consents = state.store.consents_where(|consent| {
        consent.status == ConsentStatus::Authorized
            && consent.customer.as_deref() == Some(customer.as_str())
            && consent_id
                .as_deref()
                .is_none_or(|wanted| consent.id == wanted)
    });
    let accounts = consents
        .iter()
        .flat_map(|consent| state.visible_accounts(consent))
        .collect();
    let location = ListLocation::new(
        &state.public_base_url,
        "/bank_accounts",
        &[
            ("customer", Some(customer.as_str())),
            ("consent", consent_id.as_deref()),
        ],
    );
    Ok(Json(paginate(accounts, page, &location)))
}

pub async fn balance(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams,
) -> ApiResult<Json<Balance>> {
    params.finish()?;
    let (account, consent) = find_account(&state, &id)?;
    require_scope(&consent, Scope::Balance)?;
    let transactions = transactions_for(&account, &consent);
    Ok(Json(balance_for(&account, &transactions)))
}

/// Newest first; filters `status`, `timestamp.gte`, `timestamp.lte`; offset paging.
pub async fn transactions(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    QueryParams(mut params): QueryParams,
) -> ApiResult<Json<ListResponse<Transaction>>> {
    let status = params.optional("status")?;
    if let Some(text) = &status
        && !matches!(text.as_str(), "pending" | "booked")
    {
        return Err(ApiError::invalid_parameter(
            "status",
            "expected pending or booked",
        ));
    }
    let gte_text = params.optional("timestamp.gte")?;
    let lte_text = params.optional("timestamp.lte")?;
    let parse_bound = |name: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| {
                Timestamp::parse_lenient(text).ok_or_else(|| {
                    ApiError::invalid_parameter(name, "expected YYYY-MM-DD or an ISO-8601 time")
                })
            })
            .transpose()
    };
    let from = parse_bound("timestamp.gte", &gte_text)?;
    let until = parse_bound("timestamp.lte", &lte_text)?;
    let page = PageRequest::take_from(&mut params)?;
    params.finish()?;

    let (account, consent) = find_account(&state, &id)?;
    require_scope(&consent, Scope::Transactions)?;
    let matching = transactions_for(&account, &consent)
        .into_iter()
        .filter(|transaction| {
            status
                .as_deref()
                .is_none_or(|wanted| transaction.status == wanted)
                && from.is_none_or(|from| transaction.timestamp >= from)
                && until.is_none_or(|until| transaction.timestamp <= until)
        })
        .collect();
    let location = ListLocation::new(
        &state.public_base_url,
        &format!("/bank_accounts/{}/transactions", account.id),
        &[
            ("status", status.as_deref()),
            ("timestamp.gte", gte_text.as_deref()),
            ("timestamp.lte", lte_text.as_deref()),
        ],
    );
    Ok(Json(paginate(matching, page, &location)))
}

/// `GET|POST /bank_accounts/{id}/sync`: at most once an hour per account.
pub async fn sync(
    State(state): State<SandboxState>,
    Path(id): Path<String>,
    QueryParams(query): QueryParams,
    FormParams(form): FormParams,
) -> ApiResult<Json<BankAccount>> {
    query.finish()?;
    form.finish()?;
    let (account, _) = find_account(&state, &id)?;
    if let Err(wait) = state.store.start_sync(&account.id) {
        // Round up so a client that waits exactly Retry-After is allowed through.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "sync_limit_exceeded",
            "This account was synced less than an hour ago.",
        )
        .with_retry_after(Some(seconds)));
    }
    Ok(Json(account))
}

fn find_account(state: &SandboxState, id: &str) -> ApiResult<(BankAccount, Consent)> {
    state
        .find_account(id)
        .ok_or_else(|| ApiError::not_found("bank_account", id))
}

fn require_scope(consent: &Consent, scope: Scope) -> ApiResult<()> {
    if consent.has_scope(scope) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        format!(
            "Consent {} does not include the '{}' scope.",
            consent.id,
            scope.as_str()
        ),
    ))
}
