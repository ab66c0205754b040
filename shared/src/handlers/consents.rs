//! `GET /consents`, `GET /consents/{id}`, `GET /consents/{id}/accounts` and
//! `GET /accounts`: what the signed-in user has connected.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use super::{checked_id, consent_id, now, owned_consent, revocation};
use futures_util::StreamExt;

use crate::app::App;
use crate::auth::Caller;
use crate::config::AccountNumbers;
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

/// Finexer calls `GET /accounts` makes at once, at most.
pub const ACCOUNT_CALLS_AT_ONCE: usize = 8;
/// `GET /accounts` stops adding consents' accounts before its answer's
/// accounts pass this many bytes (JSON), well below Lambda's 6 MB response
/// limit and the function's memory; the answer then says `truncated`.
pub const ANSWER_LIMIT: usize = 4 * 1024 * 1024;

/// `GET /accounts`: every confirmed consent's accounts, or as many whole
/// consents' as fit in [`ANSWER_LIMIT`].
#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct AllAccounts {
    pub data: Vec<BankAccount>,
    /// Some consents' accounts were left out to keep the answer small.
    pub truncated: bool,
    /// The consents left out (ask `GET /consents/{id}/accounts` for each).
    pub omitted_consents: Vec<String>,
}

/// Takes whole consents' accounts, in the order of `consent_ids` (the
/// order `lists` yields them in), while they fit in `limit` bytes. At the
/// first that does not it stops reading `lists` (dropping the Finexer calls
/// under way) and names that consent and the rest as omitted.
async fn within_answer_limit(
    consent_ids: &[String],
    lists: impl futures_util::Stream<Item = Result<Vec<BankAccount>>>,
    limit: usize,
) -> Result<AllAccounts> {
    let mut lists = std::pin::pin!(lists);
    let mut data = Vec::new();
    let mut size = 0usize;
    let mut index = 0;
    while let Some(list) = lists.next().await {
        let list = list?;
        let bytes = serde_json::to_vec(&list).map_or(usize::MAX, |json| json.len());
        if size.saturating_add(bytes) > limit {
            break;
        }
        size += bytes;
        data.extend(list);
        index += 1;
    }
    let omitted_consents = consent_ids.get(index..).unwrap_or_default().to_vec();
    Ok(AllAccounts {
        data,
        truncated: !omitted_consents.is_empty(),
        omitted_consents,
    })
}

/// A confirmed consent's accounts as served: account numbers, IBANs and
/// card numbers keep only their last four characters unless
/// `ACCOUNT_NUMBERS=full`.
async fn served_accounts(app: &App, record: &ConsentRecord) -> Result<Vec<BankAccount>> {
    let mut list = accounts(app, record).await?;
    if app.config.account_numbers == AccountNumbers::Masked {
        list.iter_mut().for_each(mask_numbers);
    }
    Ok(list)
}

/// The identification fields that name an account or card on their own.
const MASKED_FIELDS: [&str; 3] = ["account_number", "iban", "pan"];

/// `****` and the last four characters of each of [`MASKED_FIELDS`] in the
/// account's `identification`; a value of four characters or fewer becomes
/// `****`.
pub fn mask_numbers(account: &mut BankAccount) {
    let Some(identification) = account
        .get_mut("identification")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for field in MASKED_FIELDS {
        if let Some(serde_json::Value::String(value)) = identification.get_mut(field) {
            let chars: Vec<char> = value.chars().collect();
            let last_four: String = if chars.len() > 4 {
                chars[chars.len() - 4..].iter().collect()
            } else {
                String::new()
            };
            *value = format!("****{last_four}");
        }
    }
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
            let data = served_accounts(app, &record).await?;
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
            let ids: Vec<String> = confirmed.iter().map(|r| r.consent_id.clone()).collect();
            // Futures built first: streams are lazy, so at most
            // ACCOUNT_CALLS_AT_ONCE of them run at a time.
            let calls: Vec<_> = confirmed.iter().map(|r| served_accounts(app, r)).collect();
            let lists = futures_util::stream::iter(calls).buffered(ACCOUNT_CALLS_AT_ONCE);
            let answer = within_answer_limit(&ids, lists, ANSWER_LIMIT).await?;
            json_response(200, &answer)
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
        .milestones
        .authorized_at
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
    use crate::store::{ChangeSource, ConfirmedBy, HISTORY_LIMIT, Milestones, StatusChange};
    use crate::timestamp::Timestamp;

    /// The largest consent a record can hold: every id at its longest, a
    /// full history with reasons.
    fn largest_view(n: usize) -> ConsentView {
        let id = format!("{n:0>128}");
        let at = Timestamp::parse("2026-11-29T10:00:00.000000Z").unwrap();
        let long = Some(at);
        let record = ConsentRecord {
            consent_id: id.clone(),
            owner: "u".repeat(256),
            customer_id: id.clone(),
            status: ConsentStatus::RevokePending,
            code_challenge: Some("c".repeat(43)),
            return_to: format!("https://app.example.com/{}", "p".repeat(2000)),
            state_id: id.clone(),
            created_at: at,
            updated_at: at,
            milestones: Milestones {
                provider: Some(id),
                // Four bytes a character, the longest a name may be.
                bank_name: Some("𝔅".repeat(super::super::callback::BANK_NAME_MAX)),
                authorized_at: long,
                revoke_requested_at: long,
                revoked_at: long,
                expires_at: long,
                confirm_code_hash: Some("h".repeat(43)),
                confirm_by: long,
                confirmed_at: long,
                revoke_reason: Some("confirmed_by_another_user".into()),
                renewed_at: long,
                expiry_reminder_at: long,
            },
            due_at: long,
            history: (0..HISTORY_LIMIT)
                .map(|_| StatusChange {
                    at,
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
    fn account_numbers_ibans_and_card_numbers_keep_their_last_four() {
        let mut account = serde_json::json!({
            "id": "ba_1",
            "holder_name": "Alice",
            "identification": {
                "sort_code": "200000",
                "account_number": "55779911",
                "iban": "GB33BUKB20201555555555",
                "pan": "4111 1111 1111 1234",
                "other": "kept"
            }
        });
        mask_numbers(&mut account);
        let id = &account["identification"];
        assert_eq!(id["account_number"], "****9911");
        assert_eq!(id["iban"], "****5555");
        assert_eq!(id["pan"], "****1234");
        assert_eq!(id["sort_code"], "200000", "a sort code names a branch only");
        assert_eq!(id["other"], "kept");
        assert_eq!(account["holder_name"], "Alice");

        let mut short =
            serde_json::json!({"identification": {"account_number": "1234", "iban": null}});
        mask_numbers(&mut short);
        assert_eq!(short["identification"]["account_number"], "****");
        assert!(short["identification"]["iban"].is_null());
        let mut bare = serde_json::json!({"id": "ba_2", "identification": "odd"});
        mask_numbers(&mut bare);
        assert_eq!(
            bare["identification"], "odd",
            "an unexpected shape is left alone"
        );
    }

    #[tokio::test]
    async fn the_answer_stops_at_its_limit_and_names_what_it_left_out() {
        let account =
            |n: usize| serde_json::json!({"id": format!("ba_{n}"), "pad": "x".repeat(100)});
        let ids = |count: usize| (0..count).map(|i| format!("bc_{i}")).collect::<Vec<_>>();
        let lists = |count: usize| {
            futures_util::stream::iter((0..count).map(move |i| Ok(vec![account(i)])))
        };
        let one = serde_json::to_vec(&vec![account(0)]).unwrap().len();
        let whole = within_answer_limit(&ids(3), lists(3), 10 * one)
            .await
            .unwrap();
        assert!(!whole.truncated && whole.omitted_consents.is_empty());
        assert_eq!(whole.data.len(), 3);

        // Stops reading at the first list that does not fit.
        let read = std::sync::atomic::AtomicUsize::new(0);
        let counted = lists(5).inspect(|_| {
            read.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let cut = within_answer_limit(&ids(5), counted, 2 * one + 1)
            .await
            .unwrap();
        assert!(cut.truncated);
        assert_eq!(cut.data.len(), 2);
        assert_eq!(cut.omitted_consents, ["bc_2", "bc_3", "bc_4"]);
        assert_eq!(read.load(std::sync::atomic::Ordering::SeqCst), 3);

        let failing = futures_util::stream::iter([
            Ok(vec![account(0)]),
            Err(Error::FinexerUnavailable {
                detail: "down".into(),
                retry_after: None,
            }),
        ]);
        assert!(
            within_answer_limit(&ids(2), failing, usize::MAX)
                .await
                .is_err()
        );
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
