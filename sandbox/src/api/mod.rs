//! The part of Finexer's HTTP API our client calls (`docs/finexer-api.md`).

pub mod auth;
pub mod bank_accounts;
pub mod consents;
pub mod customers;
pub mod error;
pub mod paging;
pub mod params;
pub mod providers;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::SandboxState;
use error::ApiError;

pub fn routes(state: SandboxState) -> Router<SandboxState> {
    Router::new()
        .route("/customers", post(customers::create))
        .route("/consents", post(consents::create))
        .route(
            "/consents/{id}",
            get(consents::fetch).post(consents::update),
        )
        .route("/consents/{id}/revoke", post(consents::revoke))
        .route("/providers", get(providers::list))
        .route("/bank_accounts", get(bank_accounts::list))
        // Innermost first: auth runs after the latency and the empty-query check.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        .route_layer(middleware::from_fn_with_state(state, add_base_latency))
        .route_layer(middleware::from_fn(reject_empty_query))
}

/// Finexer answered a URL ending in a bare `?` with 400; clients must not send one.
async fn reject_empty_query(request: Request, next: Next) -> Response {
    if request.uri().query() == Some("") {
        return ApiError::bad_request(
            "empty_query_string",
            "The URL ends with '?' but has no query parameters.",
        )
        .into_response();
    }
    next.run(request).await
}

async fn add_base_latency(
    State(state): State<SandboxState>,
    request: Request,
    next: Next,
) -> Response {
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    next.run(request).await
}
