//! The scheduled reconciler: looks at every record that needs a look and
//! makes it true, without a Scan.
//!
//! A record carries `due_at` (the sparse `due` index) only while something
//! can happen to it that nobody may tell us about:
//! - pending past its state's lifetime: the callback can no longer come, so
//!   Finexer is asked once; still pending there, it is revoked (abandoned);
//! - `revoke_pending`: a revocation that did not finish;
//! - authorized but unconfirmed: revoked when the window closes;
//! - authorized and confirmed: once a day at its own time of day
//!   ([`confirmed_look`]), and at `expires_at`.
//!
//! Each record is first claimed by moving its `due_at` to a lease (a
//! conditional write on the value read), so two runs at once, or a run and a
//! callback, never handle it twice; what follows is conditional too. Each
//! run reads pages of [`Config::reconcile_page_size`] records and stops
//! claiming once its time budget is spent; an unfinished record keeps a
//! `due_at` and is taken up again by a later run.
//!
//! [`Config::reconcile_page_size`]: crate::config::Config

use std::time::Duration;

use super::follow::{Followed, follow, state_expiry};
use super::revocation;
use crate::app::App;
use crate::consent::{AWAITING_OUTCOME, ConsentStatus};
use crate::error::{Error, Result};
use crate::store::{ChangeSource, ConsentRecord, Guard};
use crate::timestamp::Timestamp;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

/// How long a claimed record is the claiming run's: longer than handling one
/// record can take (a Finexer call with its retries, a few writes).
pub const LEASE: time::Duration = time::Duration::minutes(5);
/// Records handled at once: Finexer and DynamoDB calls overlap.
const CONCURRENCY: usize = 8;
/// A record is claimed only while the invocation has this much work time left.
const TIME_PER_RECORD: Duration = Duration::from_secs(6);
/// Back-off bounds for a record that needs another look.
const SOONEST: time::Duration = time::Duration::minutes(1);
const LATEST: time::Duration = time::Duration::hours(6);
/// A consent still authorized at Finexer past its recorded expiry is asked
/// about again after this long.
const EXPIRY_RECHECK: time::Duration = time::Duration::hours(1);

/// What a run is asked to do. The deployed reconciler acts now, with the
/// invocation's time: whatever its payload says, it has nothing to set.
/// Running "at" another time or with a shorter budget is a test hook, built
/// only with the `test-util` feature (the local stack's `POST
/// /local/reconcile`, the test kit); no Lambda enables it
/// (scripts/check-shipped.sh), so in a deployed function these fields do not
/// exist.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Run {
    /// The time the run acts at (RFC 3339); now when absent.
    #[cfg(any(test, feature = "test-util"))]
    #[serde(default)]
    pub at: Option<String>,
    /// Work time, if less than the invocation allows.
    #[cfg(any(test, feature = "test-util"))]
    #[serde(default)]
    pub budget_ms: Option<u64>,
}

impl Run {
    /// The time the run acts at, and its own budget if it has one.
    #[cfg(any(test, feature = "test-util"))]
    fn clock(&self) -> Result<(Timestamp, Option<Duration>)> {
        let now = match &self.at {
            Some(at) => Timestamp::parse(at)
                .map_err(|_| Error::BadRequest("`at` is not an RFC 3339 time".into()))?,
            None => Timestamp::now(),
        };
        Ok((now, self.budget_ms.map(Duration::from_millis)))
    }

    #[cfg(not(any(test, feature = "test-util")))]
    fn clock(&self) -> Result<(Timestamp, Option<Duration>)> {
        Ok((Timestamp::now(), None))
    }
}

/// What a run did, for its log line and the local `/local/reconcile`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Records the index listed as due.
    pub due: usize,
    /// Records this run claimed and handled.
    pub processed: usize,
    /// Of those, records whose status or fields changed.
    pub changed: usize,
    /// Of those, records left for a later run after a failure.
    pub failed: usize,
    /// Listed, but claimed or changed by someone else first.
    pub skipped: usize,
    /// The run stopped because its budget was spent.
    pub out_of_time: bool,
    /// Of the records handled, `revoke_pending` ones whose revocation was
    /// asked for over [`OVERDUE`] ago.
    #[serde(default)]
    pub revoke_pending_overdue: usize,
}

/// A revocation still pending after this long is overdue (an alarm watches).
pub const OVERDUE: time::Duration = time::Duration::hours(1);

/// What handling one record came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Changed,
    Unchanged,
    Failed,
    Skipped,
}

pub async fn reconcile(app: &App, run: Run) -> Result<Report> {
    let started = tokio::time::Instant::now();
    let (now, budget) = run.clock()?;
    let mut report = Report::default();
    let run = run_pages(app, &mut report, now, started, budget).await;
    tracing::info!(
        due = report.due,
        processed = report.processed,
        changed = report.changed,
        failed = report.failed,
        skipped = report.skipped,
        out_of_time = report.out_of_time,
        revoke_pending_overdue = report.revoke_pending_overdue,
        "reconcile run finished"
    );
    // Also after a failed run: what it got through.
    crate::metrics::record(
        &[
            (crate::metrics::RECONCILE_DUE, report.due as f64),
            (crate::metrics::RECONCILE_PROCESSED, report.processed as f64),
            (crate::metrics::RECONCILE_FAILED, report.failed as f64),
            (
                crate::metrics::REVOKE_PENDING_OVERDUE,
                report.revoke_pending_overdue as f64,
            ),
        ],
        &[],
    );
    run.map(|()| report)
}

async fn run_pages(
    app: &App,
    report: &mut Report,
    now: Timestamp,
    started: tokio::time::Instant,
    budget: Option<Duration>,
) -> Result<()> {
    // Claiming stops once the run's own budget is spent, or when the
    // invocation has too little left to finish one more record.
    let spent = || {
        budget.is_some_and(|budget| started.elapsed() >= budget)
            || crate::deadline::remaining().is_some_and(|left| left < TIME_PER_RECORD)
    };
    let mut cursor = None;
    loop {
        if spent() {
            report.out_of_time = true;
            break;
        }
        let page = app
            .store
            .due(now, app.config.reconcile_page_size, cursor.as_ref())
            .await?;
        report.due += page.records.len();
        let outcomes: Vec<Option<(Outcome, bool)>> = futures_util::stream::iter(page.records)
            .map(|(consent_id, seen)| async move {
                // Checked per record: a page may outlast the budget.
                if spent() {
                    return None;
                }
                Some(look_at(app, &consent_id, seen, now).await)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for outcome in outcomes {
            let outcome = outcome.map(|(outcome, overdue)| {
                report.revoke_pending_overdue += usize::from(overdue);
                outcome
            });
            match outcome {
                None => report.out_of_time = true,
                Some(Outcome::Skipped) => report.skipped += 1,
                Some(outcome) => {
                    report.processed += 1;
                    report.changed += usize::from(outcome == Outcome::Changed);
                    report.failed += usize::from(outcome == Outcome::Failed);
                }
            }
        }
        cursor = page.next;
        if cursor.is_none() || report.out_of_time {
            break;
        }
    }
    Ok(())
}

/// Claims one record and makes it true; errors become a later look. Also
/// says whether it was a revocation pending for over [`OVERDUE`].
async fn look_at(app: &App, consent_id: &str, seen: Timestamp, now: Timestamp) -> (Outcome, bool) {
    let lease = now + LEASE;
    let record = match app.store.move_due(consent_id, seen, Some(lease)).await {
        Ok(Some(record)) => record,
        Ok(None) => return (Outcome::Skipped, false),
        Err(e) => {
            tracing::warn!(consent_id, error = %e, "reconcile could not claim a record");
            return (Outcome::Failed, false);
        }
    };
    let overdue = record.status == ConsentStatus::RevokePending
        && record
            .milestones
            .revoke_requested_at
            .is_some_and(|asked| now - asked > OVERDUE);
    let outcome = match settle(app, record, now).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(consent_id, error = %e, "reconcile left a record for a later run");
            // The lease lapses into a retry if this write fails too.
            let retry = Some(now + SOONEST);
            if let Err(e) = app.store.move_due(consent_id, lease, retry).await {
                tracing::warn!(consent_id, error = %e, "reconcile could not reschedule a record");
            }
            Outcome::Failed
        }
    };
    (outcome, overdue)
}

/// Does what the record's status calls for, under the claim `record.due_at`.
async fn settle(app: &App, record: ConsentRecord, now: Timestamp) -> Result<Outcome> {
    // Claimed, so it has one; were it gone, releasing it fails harmlessly.
    let lease = record.due_at.unwrap_or(now);
    let consent_id = record.consent_id.clone();
    let after = match record.status {
        ConsentStatus::RevokePending => {
            match revocation::finish_as(app, &consent_id, ChangeSource::Reconcile).await {
                Ok(_) => return Ok(Outcome::Changed),
                Err(e) => {
                    let waited = now - record.milestones.revoke_requested_at.unwrap_or(now);
                    tracing::warn!(consent_id, error = %e, "revocation still not done at Finexer");
                    release(
                        app,
                        &consent_id,
                        lease,
                        Some(now + waited.clamp(SOONEST, LATEST)),
                    )
                    .await?;
                    return Ok(Outcome::Failed);
                }
            }
        }
        ConsentStatus::Authorized if record.confirmation_lapsed(now) => {
            tracing::warn!(
                consent_id,
                "consent not confirmed by its owner in time; revoking it"
            );
            let record =
                revocation::revoke_unconfirmed(app, record, ChangeSource::Reconcile).await?;
            return Ok(if record.status == ConsentStatus::Canceled {
                Outcome::Changed
            } else {
                Outcome::Failed
            });
        }
        ref status if status.is_final() => {
            release(app, &consent_id, lease, None).await?;
            return Ok(Outcome::Unchanged);
        }
        _ => {
            let remote = match app.finexer.get_consent(&consent_id).await {
                Ok(remote) => remote,
                Err(Error::FinexerRejected { status: 404, .. }) => {
                    tracing::warn!(consent_id, "Finexer does not know a consent we hold");
                    let age = now - record.created_at;
                    release(
                        app,
                        &consent_id,
                        lease,
                        Some(now + age.clamp(SOONEST, LATEST)),
                    )
                    .await?;
                    return Ok(Outcome::Unchanged);
                }
                Err(e) => return Err(e),
            };
            let followed = follow(app, record, &remote, ChangeSource::Reconcile, now).await?;
            if let Followed::Unchanged(record) = &followed {
                let still_pending = AWAITING_OUTCOME.contains(&remote.status)
                    && AWAITING_OUTCOME.contains(&record.status);
                if still_pending && now >= state_expiry(app, record) {
                    return abandon(app, record).await;
                }
            }
            followed
        }
    };
    let (outcome, record) = match after {
        Followed::Changed(record) => (Outcome::Changed, record),
        Followed::Unchanged(record) => (Outcome::Unchanged, record),
        Followed::Gone => return Ok(Outcome::Skipped),
    };
    // A change that set its own next look has released the claim already.
    if record.due_at == Some(lease) {
        release(app, &consent_id, lease, next_look(app, &record, now)).await?;
    }
    Ok(outcome)
}

/// A link whose state has lapsed and that Finexer still holds pending: the
/// user left it, and no callback can finish it now. It is revoked at Finexer
/// and recorded `canceled` (reason `abandoned`), so it is not polled for the
/// week Finexer would keep it. If the revocation fails, the record stays
/// `revoke_pending` and later runs retry the revocation alone.
async fn abandon(app: &App, record: &ConsentRecord) -> Result<Outcome> {
    let asked = revocation::request(
        app,
        &record.consent_id,
        Guard::default(),
        &AWAITING_OUTCOME,
        Some(revocation::reason::ABANDONED),
    )
    .await?;
    if asked.is_none() {
        // Changed meanwhile (an event): the claim lapses into another look.
        return Ok(Outcome::Skipped);
    }
    tracing::info!(consent_id = %record.consent_id, "abandoned link revoked");
    match revocation::finish_as(app, &record.consent_id, ChangeSource::Reconcile).await {
        Ok(_) => Ok(Outcome::Changed),
        Err(e) => {
            tracing::warn!(consent_id = %record.consent_id, error = %e, "revocation left pending");
            Ok(Outcome::Failed)
        }
    }
}

/// How often a confirmed consent is asked about at least: a revocation at
/// the bank whose webhook never came reaches the record within this.
pub const CONFIRMED_LOOK_EVERY: time::Duration = time::Duration::hours(24);

/// When a confirmed consent is next asked about: at its own time of day
/// (derived from its id, so looks spread evenly over the day instead of
/// bunching where consents were confirmed), at most
/// [`CONFIRMED_LOOK_EVERY`] from `now`, and no later than its expiry.
pub fn confirmed_look(
    consent_id: &str,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Timestamp {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(consent_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let day = CONFIRMED_LOOK_EVERY.whole_seconds() as u64;
    let phase = time::Duration::seconds((u64::from_be_bytes(first) % day) as i64);
    let mut next = Timestamp::from(now.datetime().replace_time(time::Time::MIDNIGHT)) + phase;
    while next <= now {
        next = next + CONFIRMED_LOOK_EVERY;
    }
    match expires_at {
        Some(expiry) => next.min(expiry.max(now + EXPIRY_RECHECK)),
        None => next,
    }
}

/// When a record that stays as it is should be looked at again.
fn next_look(app: &App, record: &ConsentRecord, now: Timestamp) -> Option<Timestamp> {
    let milestones = &record.milestones;
    match record.status {
        ConsentStatus::New | ConsentStatus::Pending => {
            let created = record.created_at;
            let state_expiry = state_expiry(app, record);
            if now < state_expiry {
                Some(state_expiry)
            } else {
                // Finexer ends a pending consent after 7 days: ask less often
                // the longer it waits.
                Some(now + (now - created).clamp(SOONEST, LATEST))
            }
        }
        ConsentStatus::Authorized if milestones.confirmed_at.is_none() => {
            Some(milestones.confirm_by.unwrap_or(now))
        }
        ConsentStatus::Authorized => Some(confirmed_look(
            &record.consent_id,
            milestones.expires_at,
            now,
        )),
        ConsentStatus::RevokePending => Some(now + SOONEST),
        ConsentStatus::Other(_) => Some(now + LATEST),
        _ => None,
    }
}

async fn release(
    app: &App,
    consent_id: &str,
    lease: Timestamp,
    next: Option<Timestamp>,
) -> Result<()> {
    app.store.move_due(consent_id, lease, next).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn confirmed_consents_are_looked_at_daily_at_their_own_time_of_day() {
        let now = at("2026-12-07T10:00:00Z");
        let mut per_hour = [0usize; 24];
        for i in 0..2400 {
            let id = format!("bc_{i}");
            let next = confirmed_look(&id, None, now);
            assert!(next > now && next <= now + CONFIRMED_LOOK_EVERY, "{id}");
            // Looked at then, the next look is a day on: every 24 hours.
            let after = confirmed_look(&id, None, next);
            assert_eq!(after - next, CONFIRMED_LOOK_EVERY, "{id}");
            // A run up to a schedule period late keeps the time of day.
            let late = confirmed_look(&id, None, next + time::Duration::minutes(15));
            assert_eq!(late, after, "{id}");
            per_hour[usize::from(next.datetime().hour())] += 1;
        }
        // Spread over the day, not bunched at the hour they were confirmed.
        assert!(
            per_hour.iter().all(|n| (50..=150).contains(n)),
            "{per_hour:?}"
        );
    }

    #[test]
    fn an_expiry_before_the_daily_look_comes_first() {
        let now = at("2026-12-07T10:00:00Z");
        let soon = at("2026-12-07T12:00:00Z");
        let daily = confirmed_look("bc_1", None, now);
        let with_expiry = confirmed_look("bc_1", Some(soon), now);
        assert_eq!(with_expiry, daily.min(soon));
        // A past expiry that Finexer does not confirm yet: asked again in an hour.
        let past = confirmed_look("bc_1", Some(at("2026-12-01T00:00:00Z")), now);
        assert_eq!(past, daily.min(now + EXPIRY_RECHECK));
    }
}
