//! One handler per function. Each is a plain async function over an
//! `http::Request` with its dependencies passed in, so the Lambda runtime and
//! the local server run the same code.

mod callback;
mod confirm;
mod consents;
mod create_link;
pub mod erasure;
mod follow;
pub mod reconcile;
mod reconfirm;
mod revocation;
mod revoke;
mod webhook;

pub use callback::callback;
pub use confirm::{Confirm, confirm};
pub use consents::consents;
pub use create_link::{CreateLink, LinkCreated, create_link};
pub use reconcile::reconcile;
pub use revoke::revoke;
pub use webhook::webhook;

use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::app::App;
use crate::routes::{self, Function, Route};

use crate::error::{Error, Result};
use crate::store::{ChangeSource, ConsentRecord, ConsentStatus};

/// A consent as the API shows it to its owner (no internal binding fields).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsentView {
    pub consent_id: String,
    pub status: ConsentStatus,
    pub provider: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub authorized_at: Option<String>,
    pub revoke_requested_at: Option<String>,
    pub revoked_at: Option<String>,
    pub expires_at: Option<String>,
    /// When the user last re-confirmed it (the UK 90-day rule).
    pub renewed_at: Option<String>,
    /// Until when an authorized consent stands without the user's
    /// re-confirmation (`POST /consents/{id}/reconfirm`).
    pub reconfirm_by: Option<String>,
    /// When Finexer reminded the user that it expires soon.
    pub expiry_reminder_at: Option<String>,
    /// Until when the owner may confirm an authorized consent.
    pub confirm_by: Option<String>,
    /// When the owner confirmed it; its accounts are served only after.
    pub confirmed_at: Option<String>,
    /// Why it was revoked, when the owner did not ask for it.
    pub revoke_reason: Option<String>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: String,
    pub from: Option<ConsentStatus>,
    pub to: ConsentStatus,
    pub source: ChangeSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<ConsentRecord> for ConsentView {
    fn from(record: ConsentRecord) -> Self {
        let reconfirm_by = reconfirm::reconfirm_by(&record);
        let mut previous = None;
        let history = record
            .history
            .into_iter()
            .map(|change| {
                let from = previous.replace(change.to.clone());
                HistoryEntry {
                    at: change.at,
                    from,
                    to: change.to,
                    source: change.source,
                    reason: change.reason,
                }
            })
            .collect();
        ConsentView {
            consent_id: record.consent_id,
            status: record.status,
            provider: record.provider,
            created_at: record.created_at,
            updated_at: record.updated_at,
            authorized_at: record.authorized_at,
            revoke_requested_at: record.revoke_requested_at,
            revoked_at: record.revoked_at,
            expires_at: record.expires_at,
            renewed_at: record.renewed_at,
            reconfirm_by,
            expiry_reminder_at: record.expiry_reminder_at,
            confirm_by: record.confirm_by,
            confirmed_at: record.confirmed_at,
            revoke_reason: record.revoke_reason,
            history,
        }
    }
}

/// Ids from URLs are opaque to us but bounded: printable ASCII, no separators.
fn checked_id<'a>(raw: &'a str, what: &str) -> Result<&'a str> {
    let valid = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(raw)
    } else {
        Err(Error::BadRequest(format!("{what} is not a valid id")))
    }
}

/// Runs `function`'s handler: the one name-to-handler dispatch, for the
/// local gateway and the tools that play API Gateway. A Lambda binary calls
/// its own handler directly (linking only that one).
pub async fn dispatch(function: Function, app: &App, request: Request) -> Response<Body> {
    match function {
        Function::CreateLink => create_link(app, request).await,
        Function::Callback => callback(app, request).await,
        Function::Confirm => confirm(app, request).await,
        Function::Revoke => revoke(app, request).await,
        Function::Consents => consents(app, request).await,
        Function::Webhook => webhook(app, request).await,
        // The route table gives it no route: nothing HTTP reaches it.
        Function::Reconcile => {
            Error::NoRoute("The reconciler serves no HTTP route.".into()).into_problem_response()
        }
    }
}

/// The consent id of a `/consents/{id}/...` route, from the event's path
/// parameters (API Gateway's, never parsed out of the raw path).
fn consent_id(request: &Request) -> Result<String> {
    let raw = routes::path_parameter(request, routes::CONSENT_ID)?;
    let id = checked_id(&raw, "consent id")?;
    crate::metrics::note_consent(id);
    Ok(id.to_owned())
}

/// The route the request came by, if it is one of `function`'s.
fn route_of(request: &Request, function: Function) -> Option<&'static Route> {
    Route::of_request(request).filter(|route| route.function == function)
}

/// The consent if it exists and belongs to `owner`; otherwise NotFound, the
/// same answer for both so that ids cannot be probed.
async fn owned_consent(
    store: &dyn crate::store::ConsentStore,
    consent_id: &str,
    owner: &str,
) -> Result<ConsentRecord> {
    store
        .consent(consent_id)
        .await?
        .filter(|record| record.owner == owner)
        .ok_or(Error::NotFound)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
