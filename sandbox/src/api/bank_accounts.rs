//! Bank accounts of authorized consents.

use axum::Json;
use axum::extract::State;

use super::error::{ApiError, ApiResult};
use super::paging::{ListLocation, ListResponse, PageRequest, paginate};
use super::params::QueryParams;
use crate::accounts::BankAccount;
use crate::model::ConsentStatus;
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
