//! `GET /callback`: where Finexer sends the browser back. Public: the state
//! token is its only credential, and Finexer's own record of the consent,
//! not the URL, decides the outcome.

use lambda_http::{Body, Request, Response};

use super::{checked_id, now};
use crate::app::{App, timestamp};
use crate::binding;
use crate::error::{Error, Result};
use crate::finexer::Consent;
use crate::http::{ReturnTarget, param, query_params, redirect};
use crate::secrets::AppSecrets;
use crate::state::{self, StateClaims};
use crate::store::{ChangeSource, ConsentRecord, ConsentStatus, ConsumeOutcome, Transition};

pub async fn callback(app: &App, request: Request) -> Response<Body> {
    handle(app, &request)
        .await
        .unwrap_or_else(|e| e.into_html_response(app.config.default_frontend()))
}

async fn handle(app: &App, request: &Request) -> Result<Response<Body>> {
    let params = query_params(request)?;
    let consent_id = param(&params, "fx_consent")
        .ok_or_else(|| Error::BadRequest("The link is missing its connection id.".into()))?;
    let consent_id = checked_id(consent_id, "fx_consent")?;
    let state = param(&params, "state");
    let cookie = binding::cookie(request);
    let verify = |token: &str, secrets: &AppSecrets| -> Result<StateClaims> {
        let claims = state::verify(token, secrets)?;
        binding::check(
            claims.bh.as_deref(),
            cookie.as_deref(),
            app.config.browser_binding,
        )?;
        Ok(claims)
    };
    let mut response = match param(&params, "error") {
        Some(error) => denied(app, consent_id, state, error, &verify).await?,
        None => {
            let token = state.ok_or(Error::InvalidState("missing state"))?;
            approved(app, consent_id, token, &verify).await?
        }
    };
    if cookie.is_some() {
        // The binding has done its job: don't leave it in the browser.
        if let Ok(clear) = binding::clear_cookie().parse() {
            response.headers_mut().append("set-cookie", clear);
        }
    }
    Ok(response)
}

/// Verifies a state token and its browser binding.
type Verify<'a> = dyn Fn(&str, &AppSecrets) -> Result<StateClaims> + Send + Sync + 'a;

async fn approved(
    app: &App,
    consent_id: &str,
    token: &str,
    verify: &Verify<'_>,
) -> Result<Response<Body>> {
    let secrets = app.secrets.secrets().await?;
    let claims = verify(token, &secrets)?;
    // Independent reads, made together: our record and Finexer's.
    let (record, remote) = tokio::join!(
        app.store.consent(consent_id),
        app.finexer.get_consent(consent_id)
    );
    let record = record?.ok_or(Error::InvalidState("unknown consent"))?;
    check_binding(&record, &claims)?;
    let return_to = ReturnTarget::from_record(&record.return_to, &app.config.frontend_urls)?;
    if record.status != ConsentStatus::Pending {
        return repeat_outcome(&record, &return_to);
    }
    let change = outcome_of(&remote?)?;
    complete(app, consent_id, Some(&claims), change, return_to).await
}

async fn denied(
    app: &App,
    consent_id: &str,
    token: Option<&str>,
    error: &str,
    verify: &Verify<'_>,
) -> Result<Response<Body>> {
    // Banks may drop our state on the way back: then the consent id alone
    // finds the record, and Finexer confirms the cancellation.
    let claims = match token {
        Some(token) => Some(verify(token, &*app.secrets.secrets().await?)?),
        None => None,
    };
    let record = app
        .store
        .consent(consent_id)
        .await?
        .ok_or(Error::InvalidState("unknown consent"))?;
    if let Some(claims) = &claims {
        check_binding(&record, claims)?;
    }
    let return_to = ReturnTarget::from_record(&record.return_to, &app.config.frontend_urls)?;
    if record.status != ConsentStatus::Pending {
        return repeat_outcome(&record, &return_to);
    }
    let remote = app.finexer.get_consent(consent_id).await?;
    let change = outcome_of(&remote)?;
    if change.to == ConsentStatus::Authorized {
        // The URL says denied, Finexer says authorized: believe Finexer, but
        // only with a valid state, as on the approve path.
        if claims.is_none() {
            return Err(Error::InvalidState("authorized consent without state"));
        }
    } else {
        tracing::info!(consent_id, error = %sanitised(error), "consent denied");
    }
    complete(app, consent_id, claims.as_ref(), change, return_to).await
}

/// Writes the outcome (consuming the state when there is one) and sends the
/// browser back; a lost race is answered like a reload.
async fn complete(
    app: &App,
    consent_id: &str,
    claims: Option<&StateClaims>,
    change: Transition,
    return_to: ReturnTarget,
) -> Result<Response<Body>> {
    let from = [ConsentStatus::Pending];
    let applied = match claims {
        Some(claims) => {
            app.store
                .consume_state(
                    &claims.jti,
                    consent_id,
                    now().unix_timestamp(),
                    &from,
                    &change,
                )
                .await?
                == ConsumeOutcome::Applied
        }
        None => app
            .store
            .transition(consent_id, None, &from, &change)
            .await?
            .is_some(),
    };
    if applied {
        tracing::info!(consent_id, status = %change.to, "consent outcome recorded");
        return redirect(&outcome_url(&return_to, consent_id, &change.to));
    }
    let current = app
        .store
        .consent(consent_id)
        .await?
        .ok_or(Error::InvalidState("unknown consent"))?;
    repeat_outcome(&current, &return_to)
}

/// The record change that Finexer's view of the consent calls for.
fn outcome_of(remote: &Consent) -> Result<Transition> {
    let at = timestamp(now())?;
    let mut change = Transition::new(remote.status.clone(), &at, ChangeSource::Callback);
    change.provider = remote.provider.clone();
    match remote.status {
        ConsentStatus::Authorized => {
            change.authorized_at = Some(remote.authed_at.clone().unwrap_or(at));
            change.expires_at = remote.expiry_date.clone();
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

/// A used state: a reload of a finished journey gets the same result again;
/// anything else (revoked since, still pending) gets the error page.
fn repeat_outcome(record: &ConsentRecord, return_to: &ReturnTarget) -> Result<Response<Body>> {
    if record.status.is_outcome() && record.revoked_at.is_none() {
        return redirect(&outcome_url(return_to, &record.consent_id, &record.status));
    }
    Err(Error::InvalidState("state already used"))
}

fn outcome_url(return_to: &ReturnTarget, consent_id: &str, status: &ConsentStatus) -> url::Url {
    let mut pairs = vec![("consent_id", consent_id), ("status", status.as_str())];
    if *status == ConsentStatus::Canceled {
        pairs.push(("error", "access_denied"));
    }
    return_to.with_query(&pairs)
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
