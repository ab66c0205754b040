//! `POST /consents/{id}/revoke`: the owner withdraws a consent.

use lambda_http::{Body, Request, Response};

use super::{ConsentView, consent_id, owned_consent, revocation};
use crate::app::App;
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::http::json_response;
use crate::store::{ConsentStatus, Guard};

pub async fn revoke(app: &App, request: Request) -> Response<Body> {
    crate::deadline::guard(handle(app, request))
        .await
        .unwrap_or_else(Error::into_problem_response)
}

async fn handle(app: &App, request: Request) -> Result<Response<Body>> {
    let caller = Caller::from_request(&request)?;
    let consent_id = consent_id(&request)?;
    let owner = caller.user_id.as_str();

    let guard = Guard {
        owner: Some(owner),
        ..Guard::default()
    };
    let recorded =
        revocation::request(app, &consent_id, guard, &revocation::REVOCABLE, None).await?;
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
    let record = revocation::finish(app, &consent_id).await?;
    tracing::info!(consent_id, status = %record.status, "consent revoked");
    json_response(200, &ConsentView::from(record))
}
