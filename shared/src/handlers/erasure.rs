//! Erasing one user's data on request (the right to erasure): every consent
//! of theirs still standing is revoked at Finexer, and only then is every
//! record of theirs deleted (consents, the states issued with them, their
//! Finexer customer id). Run by an operator (`erase-user`, docs/runbook.md),
//! never by a route.
//!
//! A failure stops before anything is deleted, so the records still say
//! what to revoke: running it again finishes the job.

use serde::Serialize;

use super::revocation::{self, reason};
use crate::app::App;
use crate::consent::{ConsentStatus, REVOCABLE};
use crate::error::{Error, Result};
use crate::store::{ChangeSource, ConsentRecord, Guard, LIST_LIMIT, Page};

/// What an erasure did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// Consents of the user's that were deleted.
    pub consents: usize,
    /// Of those, consents revoked at Finexer first.
    pub revoked: usize,
}

pub async fn erase_user(app: &App, owner: &str) -> Result<Erased> {
    let records = all_consents(app, owner).await?;
    let mut erased = Erased::default();
    for record in &records {
        if still_stands(&record.status) {
            revoke(app, owner, record).await?;
            erased.revoked += 1;
        }
    }
    for record in &records {
        app.store
            .delete_consent(&record.consent_id, &record.state_id)
            .await?;
        erased.consents += 1;
    }
    app.store.delete_customer(owner).await?;
    tracing::info!(
        consents = erased.consents,
        revoked = erased.revoked,
        "a user's data was erased"
    );
    Ok(erased)
}

/// Whether Finexer may still hold access for it.
fn still_stands(status: &ConsentStatus) -> bool {
    !status.is_final()
}

async fn revoke(app: &App, owner: &str, record: &ConsentRecord) -> Result<()> {
    let guard = Guard {
        owner: Some(owner),
        ..Guard::default()
    };
    revocation::request(
        app,
        &record.consent_id,
        guard,
        &REVOCABLE,
        Some(reason::ERASURE),
    )
    .await?;
    let done = revocation::finish_as(app, &record.consent_id, ChangeSource::Revoke).await?;
    if done.status != ConsentStatus::Canceled {
        return Err(Error::Conflict(format!(
            "consent {} is {} after its revocation; nothing was deleted",
            record.consent_id, done.status
        )));
    }
    Ok(())
}

async fn all_consents(app: &App, owner: &str) -> Result<Vec<ConsentRecord>> {
    let mut records = Vec::new();
    let mut page = Page {
        limit: LIST_LIMIT,
        after: None,
    };
    loop {
        let listing = app.store.consents_of(owner, &page).await?;
        records.extend(listing.records);
        match listing.next {
            Some(after) => page.after = Some(after),
            None => return Ok(records),
        }
    }
}
