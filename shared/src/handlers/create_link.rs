//! `POST /links`: starts a bank connection for the signed-in user.

use std::time::Duration;

use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use url::Url;

use super::now;
use crate::app::App;
use crate::auth::Caller;
use crate::consent::ConsentStatus;
use crate::error::{Error, Result};
use crate::finexer::{Consent, NewConsent, NewCustomer, consent_page_url};
use crate::http::{ReturnTarget, json_body, json_response};
use crate::state::{self, StateClaims};
use crate::store::{
    ConsentRecord, CustomerClaim, NewRecord, PendingLink, PendingPlace, StateRecord,
};
use crate::timestamp::Timestamp;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    /// Pre-selects the bank, skipping Finexer's bank picker.
    pub provider: Option<String>,
    /// Finexer white-label template id.
    pub template: Option<String>,
    pub skip_info: Option<bool>,
    pub skip_qr: Option<bool>,
    /// One of the configured frontend URLs; the first one when absent.
    pub return_to: Option<String>,
    /// base64url (no padding) SHA-256 of a `code_verifier` that only the
    /// starting tab keeps (RFC 7636). With it, confirming takes that
    /// verifier or the person's explicit yes, never the code alone.
    pub code_challenge: Option<String>,
    /// `S256`, the only method; may be left out.
    pub code_challenge_method: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LinkCreated {
    pub consent_id: String,
    pub consent_url: String,
    /// When the link's state token stops being accepted.
    pub expires_at: Timestamp,
}

/// How long one request may hold the right to create the user's customer;
/// longer than a Finexer create can take with its retries.
const CUSTOMER_LEASE_SECONDS: i64 = 30;
/// How long a concurrent first request waits for that customer when the
/// request has no time budget; with one, it waits as long as the budget allows.
const CUSTOMER_WAIT: Duration = Duration::from_secs(10);
/// First wait between polls; doubles up to `CUSTOMER_POLL_MAX`, so many
/// waiters do not crowd out the one creating the customer.
const CUSTOMER_POLL: Duration = Duration::from_millis(100);
const CUSTOMER_POLL_MAX: Duration = Duration::from_millis(800);

pub async fn create_link(app: &App, request: Request) -> Response<Body> {
    crate::deadline::guard(handle(app, request))
        .await
        .unwrap_or_else(Error::into_problem_response)
}

/// Read the input, resolve the user's Finexer customer, take a place among
/// their pending links, create the consent at Finexer, store it, answer
/// with its consent page. A link that is not made gives its place back.
async fn handle(app: &App, request: Request) -> Result<Response<Body>> {
    let caller = Caller::from_request(&request)?;
    let link = read_input(app, &request)?;
    let issued = now();
    let claims = StateClaims::new(
        &caller.user_id,
        issued.unix_seconds(),
        app.config.state_ttl.as_secs() as i64,
    );
    // Independent: the customer (a read, on a cold start over a connection
    // still being opened) and the place (a write), made together.
    let (customer_id, place) = tokio::join!(
        ensure_customer(app, &caller),
        take_pending_place(app, &claims, issued)
    );
    let customer_id = match (customer_id, place) {
        (Ok(customer_id), Ok(())) => customer_id,
        (Err(e), Ok(())) => {
            free_place(app, &claims).await;
            return Err(e);
        }
        // The customer's error first, as when it was looked up first.
        (Err(e), Err(_)) | (Ok(_), Err(e)) => return Err(e),
    };
    let made = async {
        let created = create_at_finexer(app, &customer_id, &link, claims.clone(), issued).await?;
        let page = store(app, &caller, customer_id, &link, &created).await?;
        answer(app, &created, page)
    }
    .await;
    if made.is_err() {
        free_place(app, &claims).await;
    }
    made
}

/// Gives back the place of a link that is not made. Not freed (the store
/// down too), it lapses with the state.
async fn free_place(app: &App, claims: &StateClaims) {
    if let Err(e) = app.store.free_pending_place(&claims.sub, &claims.jti).await {
        tracing::warn!(error = %e, "pending place not freed; it lapses with the state");
    }
}

/// Counts the link against the user's `MAX_PENDING_LINKS` until its state
/// lapses or it leaves pending. When all places are taken, the answer is
/// 429 with `Retry-After` until the first of them lapses.
async fn take_pending_place(app: &App, claims: &StateClaims, issued: Timestamp) -> Result<()> {
    let link = PendingLink {
        owner: &claims.sub,
        state_id: &claims.jti,
        expires_at: claims.exp,
    };
    let now = issued.unix_seconds();
    let max = app.config.max_pending_links;
    match app.store.take_pending_place(link, now, max).await? {
        PendingPlace::Taken => Ok(()),
        PendingPlace::Full { frees_at } => Err(Error::TooManyPendingLinks {
            max,
            retry_after: Duration::from_secs(frees_at.saturating_sub(now).max(1) as u64),
        }),
    }
}

/// The request's input, checked.
struct Link {
    input: CreateLink,
    return_to: ReturnTarget,
}

impl Link {
    fn provider(&self) -> Option<&str> {
        self.input.provider.as_deref()
    }
}

/// Reads the body: ids short and plain, the return target one of the
/// configured frontends (the first when absent).
fn read_input(app: &App, request: &Request) -> Result<Link> {
    let input: CreateLink = json_body(request)?;
    if let Some(provider) = &input.provider {
        option_id(provider, "provider")?;
    }
    if let Some(template) = &input.template {
        option_id(template, "template")?;
    }
    check_challenge(&input)?;
    let return_to = match &input.return_to {
        Some(raw) => ReturnTarget::parse(raw, &app.config.frontend_urls)?,
        None => ReturnTarget::parse(
            app.config.default_frontend().as_str(),
            &app.config.frontend_urls,
        )?,
    };
    Ok(Link { input, return_to })
}

/// A challenge is what S256 makes of a verifier: 43 base64url characters.
fn check_challenge(input: &CreateLink) -> Result<()> {
    if let Some(method) = &input.code_challenge_method {
        if method != "S256" {
            return Err(Error::BadRequest(
                "code_challenge_method must be S256, the only method supported".into(),
            ));
        }
        if input.code_challenge.is_none() {
            return Err(Error::BadRequest(
                "code_challenge_method was given without a code_challenge".into(),
            ));
        }
    }
    if let Some(challenge) = &input.code_challenge
        && !super::confirm::is_challenge(challenge)
    {
        return Err(Error::BadRequest(
            "code_challenge must be the base64url (no padding) SHA-256 of the code_verifier: \
             43 characters of A-Z, a-z, 0-9, - and _"
                .into(),
        ));
    }
    Ok(())
}

/// A consent Finexer created for the link, not yet recorded by us.
struct Created {
    consent: Consent,
    /// The state token's claims; the token is in the consent's return URL.
    claims: StateClaims,
    issued: Timestamp,
}

/// Signs the link's state token and creates the consent at Finexer with
/// the callback (carrying the token) as its return URL.
async fn create_at_finexer(
    app: &App,
    customer_id: &str,
    link: &Link,
    claims: StateClaims,
    issued: Timestamp,
) -> Result<Created> {
    let keys = app.secrets.state_keys().await?;
    let token = state::sign(&claims, &*keys)?;
    let mut return_url = app.config.callback_url.clone();
    return_url.query_pairs_mut().append_pair("state", &token);

    let consent = app
        .finexer
        .create_consent(&NewConsent {
            customer: customer_id,
            return_url: return_url.as_str(),
            provider: link.provider(),
            state_id: &claims.jti,
        })
        .await?;
    crate::metrics::note_consent(&consent.id);
    Ok(Created {
        consent,
        claims,
        issued,
    })
}

/// Records the created consent and its state, and returns its consent page.
/// Whatever fails (an answer we may not use, the store), the consent is
/// withdrawn at Finexer: none is left there that we do not know about.
async fn store(
    app: &App,
    caller: &Caller,
    customer_id: String,
    link: &Link,
    created: &Created,
) -> Result<Url> {
    let stored = async {
        let page = consent_page(app, link, &created.consent)?;
        let (record, state_record) = new_records(app, caller, customer_id, link, created)?;
        app.store.insert_consent(&record, &state_record).await?;
        Ok(page)
    };
    match stored.await {
        Ok(page) => Ok(page),
        Err(e) => {
            forget_at_finexer(app, &created.consent.id).await;
            Err(e)
        }
    }
}

/// The page we send the user to: a pending consent's, checked.
fn consent_page(app: &App, link: &Link, consent: &Consent) -> Result<Url> {
    let url = consent
        .redirect
        .as_ref()
        .and_then(|r| r.consent_url.as_deref());
    let page = match (&consent.status, url) {
        (ConsentStatus::Pending, Some(url)) => consent_page_url(
            url,
            &app.config.finexer_consent_hosts,
            link.input.template.as_deref(),
            link.input.skip_info,
            link.input.skip_qr,
        ),
        _ => Err(Error::FinexerUnavailable {
            detail: format!(
                "consent {} came back {} without a consent page",
                consent.id, consent.status
            ),
            retry_after: None,
        }),
    };
    if page.is_err() {
        // The call succeeded, but its answer is not one we may use.
        crate::metrics::count(
            crate::metrics::FINEXER_ERROR,
            &[("Operation", "create_consent")],
        );
    }
    page
}

/// The consent's first record and its state's.
fn new_records(
    app: &App,
    caller: &Caller,
    customer_id: String,
    link: &Link,
    created: &Created,
) -> Result<(ConsentRecord, StateRecord)> {
    let Created {
        consent,
        claims,
        issued,
    } = created;
    let mut record = ConsentRecord::created(NewRecord {
        consent_id: &consent.id,
        owner: &caller.user_id,
        customer_id: &customer_id,
        state_id: &claims.jti,
        return_to: link.return_to.as_str(),
        status: consent.status.clone(),
        at: *issued,
    });
    record.code_challenge = link.input.code_challenge.clone();
    record.milestones.provider = consent
        .provider
        .clone()
        .or(link.provider().map(str::to_owned));
    // Once the state has lapsed no callback can finish the journey: the
    // reconciler then asks Finexer how it ended.
    record.due_at = Some(*issued + app.config.state_ttl);
    let state_record = StateRecord {
        state_id: claims.jti.clone(),
        consent_id: consent.id.clone(),
        owner: caller.user_id.clone(),
        expires_at: claims.exp,
    };
    Ok((record, state_record))
}

/// 201 with the consent page and until when the link is accepted.
fn answer(app: &App, created: &Created, page: Url) -> Result<Response<Body>> {
    tracing::info!(consent_id = %created.consent.id, "consent link created");
    crate::metrics::count(crate::metrics::LINK_CREATED, &[]);
    json_response(
        201,
        &LinkCreated {
            consent_id: created.consent.id.clone(),
            consent_url: page.into(),
            expires_at: created.issued + app.config.state_ttl,
        },
    )
}

/// Leaves no consent at Finexer that no record of ours knows about.
async fn forget_at_finexer(app: &App, consent_id: &str) {
    let revoked = crate::deadline::cleanup(app.finexer.revoke_consent(consent_id)).await;
    if let Err(cleanup) = revoked {
        tracing::error!(
            consent_id,
            error = %cleanup,
            "unrecorded consent could not be revoked; it lapses at Finexer after 7 days"
        );
    }
}

/// Provider and template ids go into Finexer requests and URLs: keep them short
/// and plain.
fn option_id<'a>(raw: &'a str, what: &str) -> Result<&'a str> {
    super::checked_id(raw, what)
}

/// The user's Finexer customer, created on first use. A lease in the store
/// makes concurrent first calls create one customer, not one each.
async fn ensure_customer(app: &App, caller: &Caller) -> Result<String> {
    if let Some(id) = app.known_customers.get(&caller.user_id) {
        return Ok(id);
    }
    let id = find_or_create_customer(app, caller).await?;
    app.known_customers.remember(&caller.user_id, &id);
    Ok(id)
}

async fn find_or_create_customer(app: &App, caller: &Caller) -> Result<String> {
    if let Some(id) = app.store.customer(&caller.user_id).await? {
        return Ok(id);
    }
    let email = caller.email.as_deref().ok_or_else(|| {
        Error::BadRequest(
            "The sign-in token carries no email claim; Finexer needs an email to set up \
             the user's bank connection profile."
                .into(),
        )
    })?;
    let wait = crate::deadline::remaining().map_or(CUSTOMER_WAIT, |left| {
        // Room to create the consent once the customer is there.
        left.saturating_sub(app.config.finexer_timeout + CUSTOMER_POLL_MAX)
    });
    let deadline = tokio::time::Instant::now() + wait;
    let mut poll = CUSTOMER_POLL;
    loop {
        let claim = app
            .store
            .claim_customer(
                &caller.user_id,
                now().unix_seconds(),
                CUSTOMER_LEASE_SECONDS,
            )
            .await?;
        match claim {
            CustomerClaim::Existing(id) => return Ok(id),
            CustomerClaim::Claimed => {
                let created = app
                    .finexer
                    .create_customer(&NewCustomer {
                        name: caller.name.as_deref().unwrap_or(&caller.user_id),
                        email,
                        user_ref: &caller.user_id,
                    })
                    .await;
                return match created {
                    Ok(customer) => app.store.save_customer(&caller.user_id, &customer.id).await,
                    Err(e) => {
                        if let Err(release) =
                            app.store.release_customer_claim(&caller.user_id).await
                        {
                            tracing::warn!(error = %release, "customer lease not released; it lapses");
                        }
                        Err(e)
                    }
                };
            }
            CustomerClaim::Busy if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(poll).await;
                poll = (poll * 2).min(CUSTOMER_POLL_MAX);
                // A plain read while the other request works; claim again
                // only if it has not saved one (its lease may have lapsed).
                if let Some(id) = app.store.customer(&caller.user_id).await? {
                    return Ok(id);
                }
            }
            CustomerClaim::Busy => {
                return Err(Error::Busy(
                    "Your bank connection profile is being set up; try again in a moment.".into(),
                ));
            }
        }
    }
}
