//! Following Finexer: applying what Finexer says of a consent now to our
//! record, for the webhook and the reconciler alike. An event or a schedule
//! only says *when* to look; Finexer's answer says *what* to record.
//!
//! The rules, whoever applies them:
//! - a record never moves backwards ([`ConsentStatus::may_follow`]): a final
//!   status (`failed`, `expired`, `canceled`) stays, and `authorized` is only
//!   reached from `new`/`pending`;
//! - while a pending consent's state token is alive, its callback may still
//!   come and hand the owner the confirmation code, so an approval is left to
//!   it; after that, the approval is recorded unconfirmed and, with no code in
//!   anyone's hands, revoked when the confirmation window closes;
//! - every write is conditional on the status read, so it is safe alongside
//!   callbacks, revokes, other events and another reconciler run.

use crate::app::App;
use crate::consent::{AWAITING_OUTCOME, ConsentStatus, MAY_EXPIRE, REVOKED_FROM};
use crate::error::Result;
use crate::finexer::Consent;
use crate::store::{ChangeSource, ConsentRecord, Due, Guard, Transition};
use crate::timestamp::Timestamp;

/// Writes that lose a race are retried on the fresh record this many times.
const ATTEMPTS: usize = 3;

/// What following Finexer did to a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The record changed; here it is.
    Changed(ConsentRecord),
    /// Nothing to record (already so, or not ours to record now).
    Unchanged(ConsentRecord),
    /// The record is gone.
    Gone,
}

/// Applies Finexer's view `remote` of `record`'s consent.
pub async fn follow(
    app: &App,
    mut record: ConsentRecord,
    remote: &Consent,
    source: ChangeSource,
    now: Timestamp,
) -> Result<Followed> {
    for _ in 0..ATTEMPTS {
        let Some((from, change)) = change_for(app, &record, remote, source, now) else {
            return Ok(Followed::Unchanged(record));
        };
        if let Some(changed) = app
            .store
            .transition(&record.consent_id, Guard::default(), &from, &change)
            .await?
        {
            tracing::info!(
                consent_id = %record.consent_id,
                from = %record.status,
                to = %changed.status,
                source = ?source,
                "consent follows Finexer"
            );
            if change.set.revoked_at.is_some() {
                // Revoked at the bank, or our pending revocation done by Finexer.
                crate::metrics::count(crate::metrics::REVOCATION, &[("Outcome", "completed")]);
            }
            return Ok(Followed::Changed(changed));
        }
        // Changed meanwhile: decide again on what is there now.
        record = match app.store.consent(&record.consent_id).await? {
            Some(fresh) => fresh,
            None => return Ok(Followed::Gone),
        };
    }
    Ok(Followed::Unchanged(record))
}

/// The change Finexer's view calls for, and the statuses it may apply from.
fn change_for(
    app: &App,
    record: &ConsentRecord,
    remote: &Consent,
    source: ChangeSource,
    now: Timestamp,
) -> Option<(Vec<ConsentStatus>, Transition)> {
    use ConsentStatus::*;
    let mut change = Transition::new(remote.status.clone(), now, source);
    let set = &mut change.set;
    // The bank the user chose, as the callback records it.
    set.provider = remote.provider.clone();
    let from = match (&record.status, &remote.status) {
        (New | Pending, Authorized) => {
            if callback_may_come(app, record, now) {
                return None;
            }
            set.authorized_at = Some(remote.authed_at.unwrap_or(now));
            set.expires_at = remote.expiry_date;
            // No code went out, so it can never be confirmed: it stands only
            // for the window a late confirmation would have had.
            let confirm_by = now + app.config.confirm_ttl;
            set.confirm_by = Some(confirm_by);
            change.due = Due::At(confirm_by);
            AWAITING_OUTCOME.to_vec()
        }
        (Authorized, Authorized) => {
            // Still live: take a moved expiry (a re-confirmation elsewhere).
            if remote.expiry_date.is_none() || remote.expiry_date == record.milestones.expires_at {
                return None;
            }
            set.expires_at = remote.expiry_date;
            set.renewed_at = remote.renewed_at;
            if record.milestones.confirmed_at.is_some() {
                change.due = Due::At(super::reconcile::confirmed_look(
                    &record.consent_id,
                    remote.expiry_date,
                    now,
                ));
            }
            vec![Authorized]
        }
        (New | Pending, Failed) => AWAITING_OUTCOME.to_vec(),
        (New | Pending | Authorized, Expired) => MAY_EXPIRE.to_vec(),
        // Denied at the consent page: not a revocation.
        (New | Pending, Canceled) => AWAITING_OUTCOME.to_vec(),
        // Revoked at the bank, or our pending revocation done by Finexer.
        (Authorized | RevokePending, Canceled) => {
            set.revoked_at = Some(now);
            REVOKED_FROM.to_vec()
        }
        _ => return None,
    };
    debug_assert!(from.iter().all(|f| f.may_follow(&change.to)));
    Some((from, change))
}

/// Whether a pending consent's callback can still arrive: its state token
/// has not yet expired.
fn callback_may_come(app: &App, record: &ConsentRecord, now: Timestamp) -> bool {
    now < state_expiry(app, record)
}

/// When the state token issued with the consent expires: no callback after.
pub fn state_expiry(app: &App, record: &ConsentRecord) -> Timestamp {
    record.created_at + app.config.state_ttl
}
