//! `POST /consents/{id}/confirm`: the signed-in owner claims the consent with
//! the one-time code the callback handed to the browser that came back from
//! the bank (the authorization-code pattern, applied to the consent).
//!
//! A state token proves that a link was ours; it cannot prove who stood at
//! the bank. The code travels only to the browser that finished the bank
//! journey, and is accepted only with the link owner's own sign-in, so a
//! consent completed by someone else never counts as the owner's.
//!
//! A code alone cannot tell the owner's own tab from a return URL someone
//! else forwarded to them. A link created with a `code_challenge` therefore
//! also needs a proof: the `code_verifier` only the starting tab holds, or
//! `confirmed_by_user: true`, sent after the person saw the bank's name and
//! said yes. Its history entry says which (`confirmed_by`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{consent_id, now, revocation};
use crate::app::App;
use crate::auth::Caller;
use crate::consent::{ConsentStatus, ConsentView};
use crate::error::{Error, Result};
use crate::http::{json_body, json_response};
use crate::routes::{self, Function};
use crate::store::{ChangeSource, ConfirmedBy, ConsentRecord, Due, Guard, Transition};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// The `code` the callback added to the return URL's fragment.
    pub code: Option<String>,
    /// The verifier whose S256 is the link's `code_challenge`.
    pub code_verifier: Option<String>,
    /// The person saw the bank's name and said yes (the tab holds no verifier).
    pub confirmed_by_user: Option<bool>,
}

/// What the body offers besides the code, checked before any record is read.
#[derive(Clone, Copy)]
enum Proof<'a> {
    None,
    Verifier(&'a str),
    User,
}

impl Confirm {
    fn proof(&self) -> Result<Proof<'_>> {
        match (&self.code_verifier, self.confirmed_by_user) {
            (Some(_), Some(_)) => Err(Error::BadRequest(
                "Send either code_verifier or confirmed_by_user, not both.".into(),
            )),
            (Some(verifier), None) if is_verifier(verifier) => Ok(Proof::Verifier(verifier)),
            (Some(_), None) => Err(Error::BadRequest(
                "code_verifier must be 43 to 128 characters of A-Z, a-z, 0-9, -, ., _ and ~ \
                 (RFC 7636)."
                    .into(),
            )),
            (None, Some(true)) => Ok(Proof::User),
            (None, Some(false)) => Err(Error::BadRequest(
                "confirmed_by_user may only be true: send it once the person has said yes.".into(),
            )),
            (None, None) => Ok(Proof::None),
        }
    }
}

/// Whether the link's owner proved this confirmation theirs, and how.
fn proved(record: &ConsentRecord, proof: Proof<'_>) -> Result<ConfirmedBy> {
    match (record.code_challenge.as_deref(), proof) {
        (Some(challenge), Proof::Verifier(verifier)) => {
            let made = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if bool::from(made.as_bytes().ct_eq(challenge.as_bytes())) {
                Ok(ConfirmedBy::Verifier)
            } else {
                Err(Error::BadRequest(
                    "The code_verifier does not match the link's code_challenge.".into(),
                ))
            }
        }
        (_, Proof::User) => Ok(ConfirmedBy::User),
        (Some(_), Proof::None) => Err(Error::BadRequest(
            "This link was created with a code_challenge: confirm with its code_verifier, \
             or with confirmed_by_user: true once the person has said yes."
                .into(),
        )),
        (None, Proof::Verifier(_)) => Err(Error::BadRequest(
            "This link was created without a code_challenge: there is nothing to check \
             the code_verifier against."
                .into(),
        )),
        (None, Proof::None) => Ok(ConfirmedBy::Code),
    }
}

/// RFC 7636's `code_verifier`: 43 to 128 unreserved characters.
fn is_verifier(raw: &str) -> bool {
    (43..=128).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// What S256 makes of a verifier: 43 base64url characters, no padding.
pub(crate) fn is_challenge(raw: &str) -> bool {
    raw.len() == CODE_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
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
    let proof = input.proof()?;
    let code = input
        .code
        .as_deref()
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
    let hash = code_hash(code);
    let record = app
        .store
        .consent(&consent_id)
        .await?
        .ok_or(Error::NotFound)?;
    if record.owner != caller.user_id {
        return claimed_by_another(app, record, &hash).await;
    }
    // Checked before anything else of the owner's: without the proof nothing
    // changes, and the code stays usable for a retry with it.
    let confirmed_by = proved(&record, proof)?;
    confirm_own(app, record, &hash, confirmed_by).await
}

async fn confirm_own(
    app: &App,
    record: ConsentRecord,
    hash: &str,
    confirmed_by: ConfirmedBy,
) -> Result<(&'static str, Response<Body>)> {
    let matches = record.milestones.confirm_code_hash.as_deref() == Some(hash);
    if record.milestones.confirmed_at.is_some() {
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
    let at = now();
    if record.confirmation_lapsed(at) {
        revocation::settle_unconfirmed(app, record).await?;
        let expired = Error::Conflict(
            "The confirmation code has expired; the connection was cancelled. Please connect again."
                .into(),
        );
        return Ok((outcome::EXPIRED, expired.into_problem_response()));
    }

    let mut change = Transition::new(ConsentStatus::Authorized, at, ChangeSource::Confirm);
    change.set.confirmed_at = Some(at);
    change.confirmed_by = Some(confirmed_by);
    // Next look: daily, and when it expires, so a revocation at the bank
    // or the expiry shows without a webhook.
    change.due = Due::At(super::reconcile::confirmed_look(
        &record.consent_id,
        record.milestones.expires_at,
        at,
    ));
    let guard = Guard {
        owner: Some(&record.owner),
        code: Some((hash, at)),
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
            if current.milestones.confirmed_at.is_none() {
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
    let guard = Guard {
        code: Some((hash, now())),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewRecord;
    use crate::timestamp::Timestamp;

    /// RFC 7636, appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn record(challenge: Option<&str>) -> ConsentRecord {
        let mut record = ConsentRecord::created(NewRecord {
            consent_id: "bc_1",
            owner: "u",
            customer_id: "cus_1",
            state_id: "s",
            return_to: "https://app.example.com/",
            status: ConsentStatus::Authorized,
            at: Timestamp::parse("2026-12-07T00:00:00.000000Z").unwrap(),
        });
        record.code_challenge = challenge.map(str::to_owned);
        record
    }

    fn body(verifier: Option<&str>, by_user: Option<bool>) -> Confirm {
        Confirm {
            code: Some("c".repeat(CODE_LEN)),
            code_verifier: verifier.map(str::to_owned),
            confirmed_by_user: by_user,
        }
    }

    fn proved_by(record: &ConsentRecord, body: &Confirm) -> Result<ConfirmedBy> {
        proved(record, body.proof()?)
    }

    #[test]
    fn a_challenged_link_takes_its_verifier_or_the_persons_yes() {
        let challenged = record(Some(CHALLENGE));
        let by_verifier = proved_by(&challenged, &body(Some(VERIFIER), None));
        assert_eq!(by_verifier.unwrap(), ConfirmedBy::Verifier);
        let by_user = proved_by(&challenged, &body(None, Some(true)));
        assert_eq!(by_user.unwrap(), ConfirmedBy::User);
        let other = "eBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        for refused in [
            body(None, None),
            body(Some(other), None),
            body(Some(&VERIFIER[..42]), None),
            body(Some(&"a".repeat(129)), None),
            body(Some(&format!("{VERIFIER}=")), None),
            body(Some(VERIFIER), Some(true)),
            body(None, Some(false)),
        ] {
            let outcome = proved_by(&challenged, &refused);
            assert!(
                matches!(outcome, Err(Error::BadRequest(_))),
                "{refused:?}: {outcome:?}"
            );
        }
    }

    #[test]
    fn a_link_without_a_challenge_takes_the_code_alone() {
        let plain = record(None);
        assert_eq!(
            proved_by(&plain, &body(None, None)).unwrap(),
            ConfirmedBy::Code
        );
        assert_eq!(
            proved_by(&plain, &body(None, Some(true))).unwrap(),
            ConfirmedBy::User
        );
        assert!(proved_by(&plain, &body(Some(VERIFIER), None)).is_err());
    }

    #[test]
    fn challenges_and_verifiers_have_rfc_7636_shapes() {
        assert!(is_challenge(CHALLENGE));
        assert!(!is_challenge(&CHALLENGE[..42]));
        assert!(!is_challenge(&format!("{CHALLENGE}A")));
        assert!(!is_challenge(&CHALLENGE.replace('-', "+")));
        assert!(is_verifier(&"a".repeat(43)) && is_verifier(&"~._-".repeat(32)));
        assert!(!is_verifier(&"a".repeat(42)) && !is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{VERIFIER}é")));
    }
}
