//! `GET /consents`, `GET /consents/{id}`, `GET /consents/{id}/accounts` and
//! `GET /accounts`: what the signed-in user has connected.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use super::{checked_id, consent_id, now, owned_consent, revocation};
use crate::app::App;
use crate::auth::Caller;
use crate::consent::{ConsentStatus, ConsentView};
use crate::error::{Error, Result};
use crate::finexer::BankAccount;
use crate::http::{json_response, param, query_params};
use crate::routes::{self, Function};
use crate::store::{ConsentRecord, LIST_LIMIT, Page};

/// Finexer lists accounts a few seconds after an authorization: within this
/// window an empty list is asked again, briefly.
const FRESH_AUTHORIZATION: time::Duration = time::Duration::seconds(60);
const ACCOUNT_RETRIES: u32 = 3;
const ACCOUNT_RETRY_WAIT: Duration = Duration::from_millis(500);

#[derive(Serialize)]
struct List<T> {
    data: Vec<T>,
}

/// A page of consents; `next_cursor` asks for the next one.
#[derive(Serialize)]
struct ConsentPage {
    data: Vec<ConsentView>,
    next_cursor: Option<String>,
}

const DEFAULT_PAGE: usize = 50;

pub async fn consents(app: &App, request: Request) -> Response<Body> {
    crate::deadline::guard(handle(app, request))
        .await
        .unwrap_or_else(Error::into_problem_response)
}

enum Route {
    List,
    One(String),
    ConsentAccounts(String),
    AllAccounts,
}

/// Which of its routes the request came by (the event's route key).
fn route(request: &Request) -> Result<Route> {
    let Some(route) = super::route_of(request, Function::Consents) else {
        return Err(Error::NoRoute(
            "The request's route is not one of the consents function's.".into(),
        ));
    };
    Ok(match *route {
        routes::LIST_CONSENTS => Route::List,
        routes::ONE_CONSENT => Route::One(consent_id(request)?),
        routes::CONSENT_ACCOUNTS => Route::ConsentAccounts(consent_id(request)?),
        routes::ALL_ACCOUNTS => Route::AllAccounts,
        _ => {
            return Err(Error::NoRoute(
                "The consents function has no handler for this route.".into(),
            ));
        }
    })
}

async fn handle(app: &App, request: Request) -> Result<Response<Body>> {
    let caller = Caller::from_request(&request)?;
    let owner = caller.user_id.as_str();
    match route(&request)? {
        Route::List => {
            let listing = app.store.consents_of(owner, &page_of(&request)?).await?;
            let mut data = Vec::new();
            for record in listing.records {
                let record = revocation::settle_unconfirmed(app, record).await?;
                data.push(ConsentView::from(record));
            }
            let next_cursor = listing.next.map(|after| URL_SAFE_NO_PAD.encode(after));
            json_response(200, &ConsentPage { data, next_cursor })
        }
        Route::One(id) => {
            let record = owned_consent(&*app.store, &id, owner).await?;
            let record = revocation::settle_unconfirmed(app, record).await?;
            json_response(200, &ConsentView::from(record))
        }
        Route::ConsentAccounts(id) => {
            ensure_account_data_enabled(app)?;
            let record = owned_consent(&*app.store, &id, owner).await?;
            let record = revocation::settle_unconfirmed(app, record).await?;
            if record.status != ConsentStatus::Authorized {
                return Err(Error::Conflict(format!(
                    "The consent is {}; accounts are available for authorized consents only.",
                    record.status
                )));
            }
            if !record.is_confirmed() {
                return Err(Error::Conflict(
                    "Confirm the consent first: its accounts are served once its owner has \
                     confirmed it (POST /consents/{id}/confirm)."
                        .into(),
                ));
            }
            let data = accounts(app, &record).await?;
            json_response(200, &List { data })
        }
        Route::AllAccounts => {
            ensure_account_data_enabled(app)?;
            // Our records decide which consents count, never Finexer's
            // customer-wide listing: it also holds consents we refused or
            // that were never confirmed.
            let first_page = Page {
                limit: LIST_LIMIT,
                after: None,
            };
            let confirmed: Vec<_> = app
                .store
                .consents_of(owner, &first_page)
                .await?
                .records
                .into_iter()
                .filter(|record| record.is_confirmed())
                .collect();
            let lists =
                futures_util::future::try_join_all(confirmed.iter().map(|r| accounts(app, r)))
                    .await?;
            let data = lists.into_iter().flatten().collect();
            json_response(200, &List { data })
        }
    }
}

/// `limit` (1 to 100) and `cursor` (from the page before) of a listing.
fn page_of(request: &Request) -> Result<Page> {
    let params = query_params(request)?;
    let limit = match param(&params, "limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=LIST_LIMIT).contains(n))
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "limit must be a whole number from 1 to {LIST_LIMIT}"
                ))
            })?,
    };
    let after = param(&params, "cursor")
        .map(|raw| {
            let bad = || Error::BadRequest("cursor is not one this API gave out".into());
            let decoded = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
            let after = String::from_utf8(decoded).map_err(|_| bad())?;
            let well_formed = after.len() <= 200
                && after.bytes().all(|b| b.is_ascii_graphic())
                && after
                    .split_once('#')
                    .is_some_and(|(_, id)| checked_id(id, "cursor").is_ok());
            if well_formed { Ok(after) } else { Err(bad()) }
        })
        .transpose()?;
    Ok(Page { limit, after })
}

fn ensure_account_data_enabled(app: &App) -> Result<()> {
    if app.config.account_data_enabled {
        return Ok(());
    }
    Err(Error::Forbidden(
        "Account data is switched off: showing bank account data to users requires FCA \
         authorisation (or acting as Finexer's authorised agent)."
            .into(),
    ))
}

/// One confirmed consent's accounts. Finexer lists them a few seconds after
/// an authorization, so an empty list just after it is asked again, briefly.
async fn accounts(app: &App, record: &ConsentRecord) -> Result<Vec<BankAccount>> {
    let fresh = record
        .authorized_at
        .as_deref()
        .and_then(|at| {
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
        })
        .is_some_and(|at| now() - at < FRESH_AUTHORIZATION);
    let mut attempt = 0;
    loop {
        let list = app
            .finexer
            .bank_accounts(&record.customer_id, Some(&record.consent_id))
            .await?;
        let in_time = crate::deadline::remaining().is_none_or(|left| left > ACCOUNT_RETRY_WAIT * 2);
        if !list.is_empty() || !fresh || attempt >= ACCOUNT_RETRIES || !in_time {
            return Ok(list);
        }
        attempt += 1;
        tokio::time::sleep(ACCOUNT_RETRY_WAIT).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ChangeSource, ConfirmedBy, HISTORY_LIMIT, StatusChange};

    /// The largest consent a record can hold: every id at its longest, a
    /// full history with reasons.
    fn largest_view(n: usize) -> ConsentView {
        let id = format!("{n:0>128}");
        let at = "2026-11-29T10:00:00.000000Z".to_owned();
        let long = Some(at.clone());
        let record = ConsentRecord {
            consent_id: id.clone(),
            owner: "u".repeat(256),
            customer_id: id.clone(),
            status: ConsentStatus::RevokePending,
            provider: Some(id.clone()),
            // Four bytes a character, the longest a name may be.
            bank_name: Some("𝔅".repeat(super::super::callback::BANK_NAME_MAX)),
            code_challenge: Some("c".repeat(43)),
            return_to: format!("https://app.example.com/{}", "p".repeat(2000)),
            state_id: id,
            created_at: at.clone(),
            updated_at: at.clone(),
            authorized_at: long.clone(),
            revoke_requested_at: long.clone(),
            revoked_at: long.clone(),
            expires_at: long.clone(),
            confirm_code_hash: Some("h".repeat(43)),
            confirm_by: long.clone(),
            confirmed_at: long.clone(),
            revoke_reason: Some("confirmed_by_another_user".into()),
            renewed_at: long.clone(),
            expiry_reminder_at: long.clone(),
            due_at: long,
            history: (0..HISTORY_LIMIT)
                .map(|_| StatusChange {
                    at: at.clone(),
                    to: ConsentStatus::RevokePending,
                    source: ChangeSource::Revoke,
                    reason: Some("confirmed_by_another_user".into()),
                    confirmed_by: Some(ConfirmedBy::Verifier),
                })
                .collect(),
        };
        ConsentView::from(record)
    }

    #[test]
    fn a_full_page_of_the_largest_consents_stays_under_one_megabyte() {
        let page = ConsentPage {
            data: (0..LIST_LIMIT).map(largest_view).collect(),
            next_cursor: Some("c".repeat(300)),
        };
        let bytes = serde_json::to_vec(&page).unwrap().len();
        println!("a page of {LIST_LIMIT} of the largest consents: {bytes} bytes");
        assert!(bytes < 1024 * 1024, "{bytes} bytes");
    }
}
