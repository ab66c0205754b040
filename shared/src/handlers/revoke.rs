//! `POST /consents/{id}/revoke`: the owner withdraws a consent.
//!
//! The request is recorded (`revoke_pending`) before Finexer is called and
//! `canceled` only after Finexer confirms, so the record never claims a
//! revocation that did not happen and never forgets one that was asked for.

use lambda_http::{Body, Request, Response};

use super::{ConsentView, checked_id, now, owned_consent};
use crate::app::{App, timestamp};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::http::{json_response, path_segments};
use crate::store::{ChangeSource, ConsentStatus, Transition};

/// Every status a revocation may start from (all but `canceled`).
const REVOCABLE: [ConsentStatus; 6] = [
    ConsentStatus::New,
    ConsentStatus::Pending,
    ConsentStatus::Authorized,
    ConsentStatus::Failed,
    ConsentStatus::Expired,
    ConsentStatus::RevokePending,
];

pub async fn revoke(app: &App, request: Request) -> Response<Body> {
    handle(app, request)
        .await
        .unwrap_or_else(Error::into_problem_response)
}

async fn handle(app: &App, request: Request) -> Result<Response<Body>> {
    let caller = Caller::from_request(&request)?;
    let segments = path_segments(&request);
    let consent_id = match segments.as_slice() {
        [.., consents, id, revoke] if consents == "consents" && revoke == "revoke" => {
            checked_id(id, "consent id")?.to_owned()
        }
        _ => return Err(Error::NotFound),
    };
    let owner = caller.user_id.as_str();

    let mut asked = Transition::new(
        ConsentStatus::RevokePending,
        &timestamp(now())?,
        ChangeSource::Revoke,
    );
    asked.revoke_requested_at = Some(asked.at.clone());
    let recorded = app
        .store
        .transition(&consent_id, Some(owner), &REVOCABLE, &asked)
        .await?;
    if recorded.is_none() {
        // Unknown, someone else's, already revoked, or in a status we do not know.
        let record = owned_consent(&*app.store, &consent_id, owner).await?;
        if record.status == ConsentStatus::Canceled {
            return json_response(200, &ConsentView::from(record));
        }
        return Err(Error::Conflict(format!(
            "The consent is {} and cannot be revoked now.",
            record.status
        )));
    }

    match app.finexer.revoke_consent(&consent_id).await {
        Ok(_) => {}
        // Finexer's advice: on a 404, confirm with a GET. Gone there too means
        // there is nothing left to revoke.
        Err(Error::FinexerRejected { status: 404, .. }) => {
            match app.finexer.get_consent(&consent_id).await {
                Ok(remote) if remote.status != ConsentStatus::Canceled => {
                    return Err(Error::FinexerUnavailable {
                        detail: "revoke answered 404 for a live consent".into(),
                        retry_after: None,
                    });
                }
                Ok(_) | Err(Error::FinexerRejected { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }

    let mut done = Transition::new(
        ConsentStatus::Canceled,
        &timestamp(now())?,
        ChangeSource::Revoke,
    );
    done.revoked_at = Some(done.at.clone());
    let record = match app
        .store
        .transition(
            &consent_id,
            Some(owner),
            &[ConsentStatus::RevokePending],
            &done,
        )
        .await?
    {
        Some(record) => record,
        // A concurrent revoke finished first.
        None => owned_consent(&*app.store, &consent_id, owner).await?,
    };
    tracing::info!(consent_id, status = %record.status, "consent revoked");
    json_response(200, &ConsentView::from(record))
}
