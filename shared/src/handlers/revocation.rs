//! Withdrawing a consent, whoever asks: its owner (`POST .../revoke`), or
//! the system when a consent must not stand (completed in another person's
//! browser, never confirmed in time).
//!
//! The request is recorded (`revoke_pending`) before Finexer is called and
//! `canceled` only after Finexer confirms, so the record never claims a
//! revocation that did not happen and never forgets one that was asked for.

use super::now;
use crate::app::App;
use crate::consent::ConsentStatus;
use crate::error::{Error, Result};
use crate::store::{ChangeSource, ConsentRecord, Due, Guard, Transition};

/// When the reconciler retries a revocation that the request itself could
/// not finish (Finexer down, the process cut off).
pub const FIRST_RETRY: time::Duration = time::Duration::minutes(1);

/// Why the system, not the owner, revoked a consent (`revoke_reason`).
pub mod reason {
    /// A valid confirmation code came back in another user's session: the
    /// bank journey was completed by someone other than the link's owner.
    pub const CONFIRMED_BY_ANOTHER_USER: &str = "confirmed_by_another_user";
    /// The owner did not confirm within `CONFIRM_TTL_SECONDS`.
    pub const UNCONFIRMED: &str = "unconfirmed";
    /// The link's state lapsed while Finexer still held it pending: the user
    /// left the bank journey unfinished.
    pub const ABANDONED: &str = "abandoned";
    /// The user asked for their data to be erased.
    pub const ERASURE: &str = "erasure";
}

/// Records that a revocation is wanted, if `guard` and the status allow it.
pub async fn request(
    app: &App,
    consent_id: &str,
    guard: Guard<'_>,
    from: &[ConsentStatus],
    reason: Option<&str>,
) -> Result<Option<ConsentRecord>> {
    let at = now();
    let mut asked = Transition::new(ConsentStatus::RevokePending, at, ChangeSource::Revoke);
    asked.set.revoke_requested_at = Some(at);
    asked.set.revoke_reason = reason.map(str::to_owned);
    asked.due = Due::At(at + FIRST_RETRY);
    app.store.transition(consent_id, guard, from, &asked).await
}

/// Revokes at Finexer a consent recorded as `revoke_pending`, then records
/// `canceled`. On failure the record stays `revoke_pending`, due for the
/// reconciler's retry.
pub async fn finish(app: &App, consent_id: &str) -> Result<ConsentRecord> {
    finish_as(app, consent_id, ChangeSource::Revoke).await
}

/// [`finish`], recording who finished it.
pub async fn finish_as(app: &App, consent_id: &str, source: ChangeSource) -> Result<ConsentRecord> {
    let finished = revoke_and_record(app, consent_id, source).await;
    let outcome = if finished.is_ok() {
        "completed"
    } else {
        "pending"
    };
    crate::metrics::count(crate::metrics::REVOCATION, &[("Outcome", outcome)]);
    finished
}

async fn revoke_and_record(
    app: &App,
    consent_id: &str,
    source: ChangeSource,
) -> Result<ConsentRecord> {
    match app.finexer.revoke_consent(consent_id).await {
        Ok(_) => {}
        // Finexer's advice: on a 404, confirm with a GET. Gone there too means
        // there is nothing left to revoke.
        Err(Error::FinexerRejected { status: 404, .. }) => {
            match app.finexer.get_consent(consent_id).await {
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

    let mut done = Transition::new(ConsentStatus::Canceled, now(), source);
    done.set.revoked_at = Some(done.at);
    let record = app
        .store
        .transition(
            consent_id,
            Guard::default(),
            &[ConsentStatus::RevokePending],
            &done,
        )
        .await?;
    match record {
        Some(record) => Ok(record),
        // A concurrent revoke finished first.
        None => app.store.consent(consent_id).await?.ok_or(Error::NotFound),
    }
}

/// An authorized consent whose owner did not confirm it in time is revoked;
/// any other record comes back as it is. Runs wherever such a record is read.
pub async fn settle_unconfirmed(app: &App, record: ConsentRecord) -> Result<ConsentRecord> {
    if !record.confirmation_lapsed(now()) {
        return Ok(record);
    }
    revoke_unconfirmed(app, record, ChangeSource::Revoke).await
}

/// Revokes an authorized consent its owner never confirmed (the caller has
/// checked that the window has passed).
pub async fn revoke_unconfirmed(
    app: &App,
    record: ConsentRecord,
    source: ChangeSource,
) -> Result<ConsentRecord> {
    let guard = Guard {
        unconfirmed: true,
        ..Guard::default()
    };
    let requested = request(
        app,
        &record.consent_id,
        guard,
        &[ConsentStatus::Authorized],
        Some(reason::UNCONFIRMED),
    )
    .await?;
    let Some(pending) = requested else {
        // Confirmed or changed meanwhile: show what is there now.
        return app
            .store
            .consent(&record.consent_id)
            .await?
            .ok_or(Error::NotFound);
    };
    tracing::warn!(
        consent_id = %record.consent_id,
        "consent not confirmed by its owner in time; revoking it"
    );
    match finish_as(app, &record.consent_id, source).await {
        Ok(record) => Ok(record),
        Err(e) => {
            // Recorded as revoke_pending: a later revoke or read retries.
            tracing::warn!(consent_id = %record.consent_id, error = %e, "revocation left pending");
            Ok(pending)
        }
    }
}
