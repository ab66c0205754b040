//! `GET /callback`: where Finexer sends the browser back. Public: the state
//! token is its only credential, and Finexer's own record of the consent,
//! not the URL, decides the outcome.

use std::time::Duration;

use lambda_http::{Body, Request, Response};

use super::{checked_id, confirm, now, revocation};
use crate::app::App;
use crate::consent::ConsentStatus;
use crate::error::{Error, Result};
use crate::finexer::Consent;
use crate::http::{ReturnTarget, param, query_params, redirect};
use crate::state::{self, StateClaims};
use crate::store::{ChangeSource, ConsentRecord, ConsumeOutcome, Due, Guard, Transition};

/// How a callback ended, the `Outcome` of its metric.
mod outcome {
    /// The consent was authorized and recorded; the owner got the code.
    pub const APPROVED: &str = "approved";
    /// Denied, failed or expired at the bank (as Finexer confirms), recorded.
    pub const DENIED: &str = "denied";
    /// We could not finish it (answered 5xx: Finexer, the store, time).
    pub const FAILED: &str = "failed";
    /// A state used before: a reload, a second tab, a lost race.
    pub const REPLAYED: &str = "replayed";
    /// A bad, forged or expired link, or one without state that settles nothing.
    pub const INVALID: &str = "invalid";
}

pub async fn callback(app: &App, request: Request) -> Response<Body> {
    let (outcome, response) = match crate::deadline::guard(handle(app, &request)).await {
        Ok(answer) => answer,
        Err(e) => {
            let outcome = match e {
                Error::InvalidState(reason) if reason == USED => outcome::REPLAYED,
                ref e if e.status() >= 500 => outcome::FAILED,
                _ => outcome::INVALID,
            };
            (outcome, e.into_html_response(app.config.default_frontend()))
        }
    };
    crate::metrics::count(crate::metrics::CALLBACK, &[("Outcome", outcome)]);
    response
}

/// Why a state is refused when its journey has ended already.
const USED: &str = "state already used";

async fn handle(app: &App, request: &Request) -> Result<(&'static str, Response<Body>)> {
    let params = query_params(request)?;
    let consent_id = param(&params, "fx_consent")
        .ok_or_else(|| Error::BadRequest("The link is missing its connection id.".into()))?;
    let consent_id = checked_id(consent_id, "fx_consent")?;
    crate::metrics::note_consent(consent_id);
    let Some(token) = param(&params, "state") else {
        return without_state(app, consent_id).await;
    };
    let claims = verify_state(app, token).await?;
    match param(&params, "error") {
        Some(error) => denied(app, consent_id, &claims, error).await,
        None => approved(app, consent_id, &claims).await,
    }
}

/// Verifies the state; a key added to the secret since it was cached is
/// fetched at once rather than after the cache's lifetime. A token that is
/// not even shaped like ours is refused before any key is fetched.
async fn verify_state(app: &App, token: &str) -> Result<StateClaims> {
    state::precheck(token)?;
    let keys = app.secrets.state_keys().await?;
    match state::verify(token, &*keys) {
        Err(Error::InvalidState(reason)) if reason == state::UNKNOWN_KEY => {
            match app.secrets.refetch_for_unknown_key().await? {
                Some(fresh) => state::verify(token, &*fresh),
                None => Err(Error::InvalidState(reason)),
            }
        }
        verified => verified,
    }
}

async fn approved(
    app: &App,
    consent_id: &str,
    claims: &StateClaims,
) -> Result<(&'static str, Response<Body>)> {
    // Independent reads, made together: our record and Finexer's.
    let (record, remote) = tokio::join!(
        app.store.consent(consent_id),
        app.finexer.get_consent(consent_id)
    );
    let record = record?.ok_or(Error::InvalidState("unknown consent"))?;
    check_binding(&record, claims)?;
    let return_to = ReturnTarget::from_record(&record.return_to, &app.config.frontend_urls)?;
    if record.status != ConsentStatus::Pending {
        return repeat_outcome(app, record, &return_to).await;
    }
    let change = outcome_of(&remote?)?;
    complete(app, consent_id, claims, change, return_to).await
}

async fn denied(
    app: &App,
    consent_id: &str,
    claims: &StateClaims,
    error: &str,
) -> Result<(&'static str, Response<Body>)> {
    let record = app
        .store
        .consent(consent_id)
        .await?
        .ok_or(Error::InvalidState("unknown consent"))?;
    check_binding(&record, claims)?;
    let return_to = ReturnTarget::from_record(&record.return_to, &app.config.frontend_urls)?;
    if record.status != ConsentStatus::Pending {
        return repeat_outcome(app, record, &return_to).await;
    }
    let remote = app.finexer.get_consent(consent_id).await?;
    // The URL says denied; Finexer's record decides (it may say authorized).
    let change = outcome_of(&remote)?;
    if change.to != ConsentStatus::Authorized {
        tracing::info!(consent_id, error = %sanitised(error), "consent denied");
    }
    complete(app, consent_id, claims, change, return_to).await
}

/// Banks may drop our state on the way back. Without it nothing proves who
/// is asking, so this path reveals nothing: every id, known or not, in any
/// status, gets the same page. It only settles a still-pending record that
/// Finexer says was denied or failed; an approval needs the state.
async fn without_state(app: &App, consent_id: &str) -> Result<(&'static str, Response<Body>)> {
    let outcome = match settle_pending_denial(app, consent_id).await {
        Ok(true) => outcome::DENIED,
        Ok(false) => outcome::INVALID,
        Err(e) => {
            // Not shown: the page must not differ. The reconciler retries.
            tracing::warn!(consent_id, error = %e, "stateless callback not settled");
            if e.status() >= 500 {
                outcome::FAILED
            } else {
                outcome::INVALID
            }
        }
    };
    let page = crate::http::html_page(
        200,
        &crate::http::unfinished_page(app.config.default_frontend()),
    )?;
    Ok((outcome, page))
}

/// Whether a denial was recorded.
async fn settle_pending_denial(app: &App, consent_id: &str) -> Result<bool> {
    let Some(record) = app.store.consent(consent_id).await? else {
        return Ok(false);
    };
    if record.status != ConsentStatus::Pending {
        return Ok(false);
    }
    let change = outcome_of(&app.finexer.get_consent(consent_id).await?)?;
    if change.to == ConsentStatus::Authorized {
        return Ok(false);
    }
    let applied = app
        .store
        .transition(
            consent_id,
            Guard::default(),
            &[ConsentStatus::Pending],
            &change,
        )
        .await?;
    if applied.is_some() {
        tracing::info!(consent_id, status = %change.to, "consent outcome recorded without state");
    }
    Ok(applied.is_some())
}

/// Writes the outcome and consumes the state, atomically, then sends the
/// browser back; an authorized consent comes back with its one-time
/// confirmation code. A lost race is answered like a reload.
async fn complete(
    app: &App,
    consent_id: &str,
    claims: &StateClaims,
    mut change: Transition,
    return_to: ReturnTarget,
) -> Result<(&'static str, Response<Body>)> {
    let code = if change.to == ConsentStatus::Authorized {
        if let Some(provider) = &change.set.provider {
            change.set.bank_name = bank_name(app, provider).await;
        }
        let (code, hash) = confirm::new_code();
        change.set.confirm_code_hash = Some(hash);
        let confirm_by = now() + app.config.confirm_ttl;
        // Unconfirmed by then, it is revoked: the reconciler looks then.
        change.due = Due::At(confirm_by);
        change.set.confirm_by = Some(confirm_by);
        Some(code)
    } else {
        None
    };
    let outcome = app
        .store
        .consume_state(
            &claims.jti,
            consent_id,
            now().unix_seconds(),
            &[ConsentStatus::Pending],
            &change,
        )
        .await?;
    if outcome == ConsumeOutcome::Applied {
        tracing::info!(consent_id, status = %change.to, "consent outcome recorded");
        // The link has its outcome: its place among the owner's pending
        // links is free (lost, it lapses with the state).
        if let Err(e) = app.store.free_pending_place(&claims.sub, &claims.jti).await {
            tracing::warn!(consent_id, error = %e, "pending place not freed; it lapses");
        }
        let pairs = outcome_pairs(consent_id, &change.to);
        return Ok(match &code {
            Some(code) => (
                outcome::APPROVED,
                redirect(&return_to.with_query_and_code(&pairs, code))?,
            ),
            None => (outcome::DENIED, redirect(&return_to.with_query(&pairs))?),
        });
    }
    let current = app
        .store
        .consent(consent_id)
        .await?
        .ok_or(Error::InvalidState("unknown consent"))?;
    repeat_outcome(app, current, &return_to).await
}

/// Longest bank name kept: a display name, not a document.
pub(crate) const BANK_NAME_MAX: usize = 100;
/// How long the callback waits for Finexer's provider list: the name is a
/// nicety for the confirmation screen, the outcome is what matters.
const BANK_NAME_WAIT: Duration = Duration::from_millis(1500);

/// The bank's display name as Finexer's provider list gives it, if it
/// does, in time. Nothing fails for want of it.
async fn bank_name(app: &App, provider: &str) -> Option<String> {
    match tokio::time::timeout(BANK_NAME_WAIT, bank_names(app)).await {
        Ok(Ok(names)) => names.get(provider).cloned(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "bank name not looked up");
            None
        }
        Err(_) => {
            tracing::warn!("bank name not looked up in time");
            None
        }
    }
}

/// Finexer's provider list as names fit to show, read at most once an hour
/// (also by the callback's start-up prefetch, [`crate::prefetch`]).
pub(crate) async fn bank_names(app: &App) -> Result<crate::app::BankNameMap> {
    app.bank_names
        .get_or_read(async {
            let providers = app.finexer.providers().await?;
            Ok(providers
                .into_iter()
                .filter_map(|p| Some((p.id, plain_name(&p.name?)?)))
                .collect())
        })
        .await
}

/// A name fit to show: trimmed, short, no control characters.
fn plain_name(name: &str) -> Option<String> {
    let name = name.trim();
    let plain = !name.is_empty()
        && name.chars().count() <= BANK_NAME_MAX
        && !name.chars().any(char::is_control);
    plain.then(|| name.to_owned())
}

/// The record change that Finexer's view of the consent calls for.
fn outcome_of(remote: &Consent) -> Result<Transition> {
    let at = now();
    let mut change = Transition::new(remote.status.clone(), at, ChangeSource::Callback);
    change.set.provider = remote.provider.clone();
    match remote.status {
        ConsentStatus::Authorized => {
            change.set.authorized_at = Some(remote.authed_at.unwrap_or(at));
            change.set.expires_at = remote.expiry_date;
        }
        ConsentStatus::Canceled | ConsentStatus::Failed | ConsentStatus::Expired => {}
        _ => {
            return Err(Error::Conflict(
                "The bank has not confirmed this connection yet. Please try again.".into(),
            ));
        }
    }
    Ok(change)
}

/// A used state: a reload of a finished journey gets the same result again,
/// without a code (the one code went out with the first answer); anything
/// else (revoked since, still pending) gets the error page.
async fn repeat_outcome(
    app: &App,
    record: ConsentRecord,
    return_to: &ReturnTarget,
) -> Result<(&'static str, Response<Body>)> {
    let record = revocation::settle_unconfirmed(app, record).await?;
    if record.status.is_outcome() && record.milestones.revoked_at.is_none() {
        let pairs = outcome_pairs(&record.consent_id, &record.status);
        return Ok((outcome::REPLAYED, redirect(&return_to.with_query(&pairs))?));
    }
    Err(Error::InvalidState(USED))
}

fn outcome_pairs<'a>(consent_id: &'a str, status: &'a ConsentStatus) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![("consent_id", consent_id), ("status", status.as_str())];
    if *status == ConsentStatus::Canceled {
        pairs.push(("error", "access_denied"));
    }
    pairs
}

fn check_binding(record: &ConsentRecord, claims: &StateClaims) -> Result<()> {
    if record.state_id != claims.jti || record.owner != claims.sub {
        return Err(Error::InvalidState("state bound to another consent"));
    }
    Ok(())
}

/// Error codes from the URL go to logs only in a bounded, plain form.
fn sanitised(error: &str) -> String {
    error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_names_are_kept() {
        assert_eq!(plain_name(" HSBC UK ").as_deref(), Some("HSBC UK"));
        assert_eq!(
            plain_name(&"é".repeat(BANK_NAME_MAX)).map(|n| n.chars().count()),
            Some(BANK_NAME_MAX)
        );
        for refused in [
            "",
            "  ",
            "Bank\nSet-Cookie: x",
            &"b".repeat(BANK_NAME_MAX + 1),
        ] {
            assert_eq!(plain_name(refused), None, "{refused:?}");
        }
    }
}
