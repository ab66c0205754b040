//! `POST /customers`.

use axum::Json;
use axum::extract::State;

use super::error::{ApiError, ApiResult};
use super::params::FormParams;
use crate::clock::Timestamp;
use crate::ids::random_id;
use crate::model::Customer;
use crate::state::SandboxState;

pub async fn create(
    State(state): State<SandboxState>,
    FormParams(mut params): FormParams,
) -> ApiResult<Json<Customer>> {
    let name = params.required("name")?;
    let email = params.required("email")?;
    let phone = params.optional("phone")?;
    let currency = params
        .optional("currency")?
        .unwrap_or_else(|| "GBP".to_owned());
    let metadata = params.map("metadata")?;
    params.finish()?;

    if !looks_like_email(&email) {
        return Err(ApiError::invalid_parameter("email", "not an email address"));
    }
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(ApiError::invalid_parameter(
            "currency",
            "expected a three-letter ISO 4217 code",
        ));
    }

    let customer = Customer {
        id: random_id("cus"),
        object: "customer",
        created_at: Timestamp::now(),
        name,
        email,
        phone,
        currency: currency.to_ascii_uppercase(),
        metadata,
    };
    state.store.insert_customer(customer.clone());
    Ok(Json(customer))
}

fn looks_like_email(text: &str) -> bool {
    text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !text.contains(char::is_whitespace)
    })
}
