//! `POST /consents/{id}/confirm`: the signed-in owner claims the consent with
//! the one-time code the callback handed to the browser that came back from
//! the bank (the authorization-code pattern, applied to the consent).
//!
//! A state token proves that a link was ours; it cannot prove who stood at
//! the bank. The code travels only to the browser that finished the bank
//! journey, and is accepted only with the link owner's own sign-in, so a
//! consent completed by someone else never counts as the owner's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{consent_id, now, revocation};
use crate::app::{App, timestamp};
use crate::auth::Caller;
use crate::consent::{ConsentStatus, ConsentView};
use crate::error::{Error, Result};
use crate::http::{json_body, json_response};
use crate::routes::{self, Function};
use crate::store::{ChangeSource, ConsentRecord, Due, Guard, Transition};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// The `code` the callback added to the return URL.
    pub code: Option<String>,
}

/// Random bytes in a code: 256 bits, far past guessing.
const CODE_BYTES: usize = 32;
/// Their base64url length, the only length a code can have.
const CODE_LEN: usize = 43;

/// A fresh code and the hash that is stored in its place.
pub(crate) fn new_code() -> (String, String) {
    let code = URL_SAFE_NO_PAD.encode(rand::random::<[u8; CODE_BYTES]>());
    let hash = code_hash(&code);
    (code, hash)
}

fn code_hash(code: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(code.as_bytes()))
}

/// How a confirm ended, the `Outcome` of its metric.
mod outcome {
    /// The owner's code was accepted.
    pub const CONFIRMED: &str = "confirmed";
    /// Already confirmed with this code: the same answer again.
    pub const REPEATED: &str = "repeated";
    /// Refused: a wrong or malformed code, an unknown consent, one not
    /// authorized or confirmed with another code.
    pub const REJECTED: &str = "rejected";
    /// A valid code from another user's session: the consent is revoked.
    pub const ANOTHER_USER: &str = "another_user";
    /// The window had closed: the consent is revoked.
    pub const EXPIRED: &str = "expired";
}

pub async fn confirm(app: &App, request: Request) -> Response<Body> {
    // The function serves two routes; the event's route key says which.
    if super::route_of(&request, Function::Confirm) == Some(&routes::RECONFIRM) {
        return crate::deadline::guard(reconfirm(app, request))
            .await
            .unwrap_or_else(Error::into_problem_response);
    }
    let (outcome, response) = match crate::deadline::guard(handle(app, request)).await {
        Ok(answer) => (Some(answer.0), answer.1),
        Err(e) => {
            // A 5xx is ours to fix, not the caller's: no outcome of theirs.
            let outcome = (e.status() < 500).then_some(outcome::REJECTED);
            (outcome, e.into_problem_response())
        }
    };
    if let Some(outcome) = outcome {
        crate::metrics::count(crate::metrics::CONFIRMATION, &[("Outcome", outcome)]);
    }
    response
}

async fn reconfirm(app: &App, request: Request) -> Result<Response<Body>> {
    let caller = Caller::from_request(&request)?;
    let consent_id = consent_id(&request)?;
    super::reconfirm::handle(app, &caller.user_id, &consent_id).await
}

async fn handle(app: &App, request: Request) -> Result<(&'static str, Response<Body>)> {
    let caller = Caller::from_request(&request)?;
    let consent_id = consent_id(&request)?;
    let input: Confirm = json_body(&request)?;
    let code = input
        .code
        .ok_or_else(|| Error::BadRequest("code is required".into()))?;
    let well_formed = code.len() == CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if !well_formed {
        return Err(Error::BadRequest(
            "code is not a confirmation code from the callback".into(),
        ));
    }
    // Comparing hashes, not codes: a timing difference tells nothing about
    // the code, whose hash nobody outside can invert.
    let hash = code_hash(&code);
    let record = app
        .store
        .consent(&consent_id)
        .await?
        .ok_or(Error::NotFound)?;
    if record.owner != caller.user_id {
        return claimed_by_another(app, record, &hash).await;
    }
    confirm_own(app, record, &hash).await
}

async fn confirm_own(
    app: &App,
    record: ConsentRecord,
    hash: &str,
) -> Result<(&'static str, Response<Body>)> {
    let matches = record.confirm_code_hash.as_deref() == Some(hash);
    if record.confirmed_at.is_some() {
        // A repeat (a reload, a retried request) gets the same answer.
        return if matches {
            Ok((
                outcome::REPEATED,
                json_response(200, &ConsentView::from(record))?,
            ))
        } else {
            Err(Error::Conflict("The consent is already confirmed.".into()))
        };
    }
    if !matches {
        return Err(Error::BadRequest(
            "The confirmation code is not valid for this consent.".into(),
        ));
    }
    if record.status != ConsentStatus::Authorized {
        return Err(Error::Conflict(format!(
            "The consent is {}; only an authorized consent can be confirmed.",
            record.status
        )));
    }
    let at = timestamp(now())?;
    if record.confirmation_lapsed(&at) {
        revocation::settle_unconfirmed(app, record).await?;
        let expired = Error::Conflict(
            "The confirmation code has expired; the connection was cancelled. Please connect again."
                .into(),
        );
        return Ok((outcome::EXPIRED, expired.into_problem_response()));
    }

    let mut change = Transition::new(ConsentStatus::Authorized, &at, ChangeSource::Confirm);
    change.confirmed_at = Some(at.clone());
    // Next look: daily, and when it expires, so a revocation at the bank
    // or the expiry shows without a webhook.
    change.due = Due::At(timestamp(super::reconcile::confirmed_look(
        &record.consent_id,
        record.expires_at.as_deref(),
        now(),
    )?)?);
    let guard = Guard {
        owner: Some(&record.owner),
        code: Some((hash, &at)),
        ..Guard::default()
    };
    let consent_id = record.consent_id.clone();
    let applied = app
        .store
        .transition(&consent_id, guard, &[ConsentStatus::Authorized], &change)
        .await?;
    let (outcome, record) = match applied {
        Some(record) => {
            tracing::info!(consent_id, "consent confirmed by its owner");
            (outcome::CONFIRMED, record)
        }
        None => {
            // A concurrent confirm won, or the consent changed meanwhile.
            let current = app
                .store
                .consent(&consent_id)
                .await?
                .ok_or(Error::NotFound)?;
            if current.confirmed_at.is_none() {
                return Err(Error::Conflict(format!(
                    "The consent is {} and cannot be confirmed now.",
                    current.status
                )));
            }
            (outcome::REPEATED, current)
        }
    };
    Ok((outcome, json_response(200, &ConsentView::from(record))?))
}

/// Someone other than the link's owner came back with its valid code: the
/// bank journey was completed in their browser, so the consent is not the
/// owner's to keep. It is revoked, and the caller learns nothing of it.
async fn claimed_by_another(
    app: &App,
    record: ConsentRecord,
    hash: &str,
) -> Result<(&'static str, Response<Body>)> {
    let at = timestamp(now())?;
    let guard = Guard {
        code: Some((hash, &at)),
        ..Guard::default()
    };
    let requested = revocation::request(
        app,
        &record.consent_id,
        guard,
        &[ConsentStatus::Authorized],
        Some(revocation::reason::CONFIRMED_BY_ANOTHER_USER),
    )
    .await?;
    if requested.is_some() {
        tracing::warn!(
            consent_id = %record.consent_id,
            "consent confirmed from another user's session; revoking it"
        );
        if let Err(e) = revocation::finish(app, &record.consent_id).await {
            // Recorded as revoke_pending; no data is served meanwhile.
            tracing::warn!(consent_id = %record.consent_id, error = %e, "revocation left pending");
        }
        return Ok((
            outcome::ANOTHER_USER,
            Error::NotFound.into_problem_response(),
        ));
    }
    Err(Error::NotFound)
}
