//! `GET /providers?roles[]=ais&offset=`.

use axum::Json;
use axum::extract::State;

use super::error::ApiResult;
use super::paging::{ListLocation, ListResponse, PageRequest, paginate};
use super::params::QueryParams;
use crate::providers::{Provider, SANDBOX_BANKS};
use crate::state::SandboxState;

pub async fn list(
    State(state): State<SandboxState>,
    QueryParams(mut params): QueryParams,
) -> ApiResult<Json<ListResponse<Provider>>> {
    let roles = params.list("roles");
    let page = PageRequest::take_from(&mut params)?;
    params.finish()?;

    // A provider is listed when it supports every role asked for.
    let matching = SANDBOX_BANKS
        .iter()
        .filter(|bank| roles.iter().all(|role| bank.roles.contains(&role.as_str())))
        .map(|bank| bank.to_provider(&state.public_base_url))
        .collect();
    let role_filters: Vec<_> = roles
        .iter()
        .map(|role| ("roles[]", Some(role.as_str())))
        .collect();
    let location = ListLocation::new(&state.public_base_url, "/providers", &role_filters);
    Ok(Json(paginate(matching, page, &location)))
}
