//! `POST /consents/{id}/reconfirm` (served by the confirm function): the
//! owner re-confirms a consent, as the UK's rules ask every 90 days for
//! access to continue. It is recorded at Finexer (`renewed_at`) first, then
//! here, with the expiry Finexer answers.

use lambda_http::{Body, Response};

use super::{now, owned_consent};
use crate::app::App;
use crate::consent::{ConsentStatus, ConsentView};
use crate::error::{Error, Result};
use crate::http::json_response;
use crate::store::{ChangeSource, Due, Guard, Transition};

pub(super) async fn handle(app: &App, owner: &str, consent_id: &str) -> Result<Response<Body>> {
    let record = owned_consent(&*app.store, consent_id, owner).await?;
    if !record.is_confirmed() {
        return Err(Error::Conflict(format!(
            "The consent is {}{}; only a confirmed, authorized consent can be re-confirmed.",
            record.status,
            if record.status == ConsentStatus::Authorized {
                " but not confirmed"
            } else {
                ""
            }
        )));
    }
    let at = now();
    let remote = app.finexer.renew_consent(consent_id, at).await?;
    let mut change = Transition::new(ConsentStatus::Authorized, at, ChangeSource::Reconfirm);
    change.set.renewed_at = Some(remote.renewed_at.unwrap_or(at));
    change.set.expires_at = remote.expiry_date;
    change.due = Due::At(super::reconcile::confirmed_look(
        consent_id,
        remote.expiry_date.or(record.milestones.expires_at),
        at,
    ));
    let guard = Guard {
        owner: Some(owner),
        confirmed: true,
        ..Guard::default()
    };
    let updated = app
        .store
        .transition(consent_id, guard, &[ConsentStatus::Authorized], &change)
        .await?;
    match updated {
        Some(record) => {
            tracing::info!(consent_id, "consent re-confirmed by its owner");
            json_response(200, &ConsentView::from(record))
        }
        None => {
            let current = owned_consent(&*app.store, consent_id, owner).await?;
            Err(Error::Conflict(format!(
                "The consent is {} and cannot be re-confirmed now.",
                current.status
            )))
        }
    }
}
