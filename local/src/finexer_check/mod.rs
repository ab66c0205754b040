//! The contract check (`finexer-check`, `scripts/finexer-check.sh`): drives
//! our own [`FinexerClient`] through the steps of a journey against a Finexer
//! (Finexer's sandbox with a sandbox key, or ours) and reports, per step, how
//! the answers differ from `docs/finexer-api.md`: field by field, with the
//! path and what depends on it, rather than as a parse error.
//!
//! Every answer is kept whole (through the client's transport seam, so the
//! requests are exactly the ones the functions send) and checked against the
//! tables in [`expected`]; the client's own parsers read the same answers.

pub mod expected;
pub mod recording;
pub mod webhook;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use shared::Error;
use shared::consent::ConsentStatus;
use shared::finexer::{
    Consent, ConsentHosts, FinexerClient, NewConsent, NewCustomer, consent_page_url,
};
use shared::secrets::{AppSecrets, SigningKey, StateKeys, StaticSecrets};
use shared::state::StateClaims;
use url::Url;

use expected::{Difference, Shape};
use recording::{Exchange, Tap, Upstream};

/// Steps of the journey, as issue 15 lists them.
pub const STEPS: u8 = 7;
/// How long accounts of an authorized consent may take to appear.
const ACCOUNTS_GRACE: Duration = Duration::from_secs(10);

/// Where Finexer's answers come from.
pub enum Source {
    /// Finexer itself (or our sandbox), with this key.
    Network {
        api_key: SecretString,
        timeout: Duration,
    },
    /// A recording (`--replay DIR`).
    Replay(Vec<Exchange>),
}

pub struct WebhookCheck {
    pub secret: SecretString,
    pub source: EventSource,
    pub wait: Duration,
}

pub enum EventSource {
    Listen(webhook::Listener),
    Saved(PathBuf),
}

pub struct Options {
    /// Printed first: what is checked, and where the key came from.
    pub label: String,
    pub base_url: Url,
    pub source: Source,
    /// The return URL a consent is created with (a signed state is added).
    pub callback_url: Url,
    /// Hosts create-link accepts consent pages on.
    pub consent_hosts: ConsentHosts,
    /// After step 3, wait this long for someone to approve the consent on
    /// its page, so that step 5 sees accounts.
    pub wait_for_approval: Option<Duration>,
    /// Pause between polls (approval, accounts).
    pub poll_every: Duration,
    pub record: Option<PathBuf>,
    pub webhook: Option<WebhookCheck>,
    /// Print each line as it is made and stop the steps on Ctrl-C (still
    /// cleaning up); otherwise only collect the lines.
    pub interactive: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    /// Differences that would break a journey (failed calls included).
    pub breaking: usize,
    /// Differences that would not.
    pub notes: usize,
    pub customer_id: Option<String>,
    pub consent_id: Option<String>,
}

/// Runs the journey, cleans up, checks the webhook, saves the recording.
/// Err only when the check cannot run at all (bad options, unwritable record
/// directory); every difference is in the report.
pub async fn run(options: Options) -> Result<Report, String> {
    if let Some(dir) = &options.record {
        recording::prepare_dir(dir).map_err(|e| format!("--record {}: {e}", dir.display()))?;
    }
    let replaying = matches!(options.source, Source::Replay(_));
    let (upstream, api_key, timeout) = match options.source {
        Source::Network { api_key, timeout } => {
            let http = shared::net::http_client_builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .user_agent(concat!("finexer-check/", env!("CARGO_PKG_VERSION")))
                // As the functions' client: an answer that redirects is refused, not followed.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("HTTP client: {e}"))?;
            (Upstream::Network(http), api_key, timeout)
        }
        Source::Replay(exchanges) => (
            Upstream::Replay(std::sync::Mutex::new(exchanges.into())),
            SecretString::from("replayed"),
            Duration::from_secs(5),
        ),
    };
    if api_key.expose_secret().trim().is_empty() {
        return Err("FINEXER_API_KEY is empty".into());
    }
    let tap = Arc::new(Tap::new(upstream, &options.base_url));
    // A throwaway key signs the state, so the return URL looks as create-link's does.
    let secrets = Arc::new(AppSecrets {
        finexer_api_key: api_key,
        state_keys: StateKeys {
            keys: vec![SigningKey {
                kid: "finexer-check".into(),
                key: SecretString::from(format!(
                    "{:032x}{:032x}",
                    rand::random::<u128>(),
                    rand::random::<u128>()
                )),
            }],
        },
        webhook_secrets: Vec::new(),
    });
    let mut client = FinexerClient::new(
        options.base_url.clone(),
        timeout,
        Arc::new(StaticSecrets(secrets.clone())),
    )
    .map_err(|e| e.to_string())?
    .with_transport(tap.clone());
    if replaying {
        client = client.with_backoff(Duration::from_millis(1));
    }

    let mut journey = Journey {
        client,
        tap: tap.clone(),
        secrets,
        callback_url: options.callback_url,
        consent_hosts: options.consent_hosts,
        wait_for_approval: options.wait_for_approval,
        poll_every: if replaying {
            Duration::ZERO
        } else {
            options.poll_every
        },
        replaying,
        echo: options.interactive,
        report: Report::default(),
        revoked: false,
        seen: Vec::new(),
    };
    journey.say(options.label);
    if let Some(check) = &options.webhook {
        let listening = match &check.source {
            EventSource::Listen(listener) => Some(listener.url().to_owned()),
            EventSource::Saved(_) => None,
        };
        webhook::instructions(listening.as_deref())
            .into_iter()
            .for_each(|line| journey.say(line));
    }

    if options.interactive {
        let steps = journey.steps();
        tokio::select! {
            () = steps => {}
            _ = tokio::signal::ctrl_c() => {
                journey.say("Interrupted: cleaning up.".into());
            }
        }
    } else {
        journey.steps().await;
    }
    journey.clean_up().await;

    let mut delivery = None;
    if let Some(check) = options.webhook {
        delivery = journey.check_webhook(check).await;
    }
    if replaying {
        let unused = tap.unused();
        if let Some(first) = unused.first() {
            journey.report.breaking += 1;
            journey.say(format!(
                "replay: {} recorded answers were not asked for (first: step {} {} {})",
                unused.len(),
                first.step,
                first.method,
                first.path
            ));
        }
    }
    if let Some(dir) = &options.record {
        match recording::save(
            dir,
            &options.base_url,
            options.wait_for_approval.is_some(),
            &tap.all(),
            delivery.as_ref(),
        ) {
            Ok(()) => journey.say(format!(
                "Recorded {} answers to {} (names, emails, account numbers, sort codes, IBANs, tokens and URL parameters redacted).",
                tap.len(),
                dir.display()
            )),
            Err(e) => {
                journey.report.breaking += 1;
                journey.say(format!("Could not record to {}: {e}", dir.display()));
            }
        }
    }
    journey.summary();
    Ok(journey.report)
}

/// Replays a recording made with `--record`: the same steps, the answers
/// from the files, through the same client parsers and tables.
pub async fn replay(dir: &std::path::Path, interactive: bool) -> Result<Report, String> {
    let (manifest, exchanges) =
        recording::load(dir).map_err(|e| format!("--replay {}: {e}", dir.display()))?;
    let base_url = Url::parse(&manifest.base_url)
        .map_err(|e| format!("{}/manifest.json: base_url: {e}", dir.display()))?;
    run(Options {
        label: format!(
            "Replaying {} ({}, recorded {} against {})",
            dir.display(),
            manifest.recorded_by,
            manifest.recorded_at,
            manifest.base_url
        ),
        consent_hosts: ConsentHosts::derived_from(&base_url),
        base_url,
        source: Source::Replay(exchanges),
        callback_url: Url::parse("https://example.com/callback").expect("a URL"),
        wait_for_approval: manifest
            .waited_for_approval
            .then_some(Duration::from_secs(0)),
        poll_every: Duration::ZERO,
        record: None,
        webhook: None,
        interactive,
    })
    .await
}

/// What one call gave: the client's typed result and the raw last answer.
struct Outcome<T> {
    value: Result<T, Error>,
    raw: Option<Value>,
    status: Option<u16>,
    attempts: usize,
}

async fn observe<T>(
    tap: &Tap,
    step: u8,
    call: impl Future<Output = Result<T, Error>>,
) -> Outcome<T> {
    tap.set_step(step);
    let start = tap.len();
    let value = call.await;
    let seen = tap.since(start);
    let last = seen.last();
    Outcome {
        value,
        raw: last.and_then(Exchange::json),
        status: last.map(|e| e.status),
        attempts: seen.len(),
    }
}

struct Journey {
    client: FinexerClient,
    tap: Arc<Tap>,
    secrets: Arc<AppSecrets>,
    callback_url: Url,
    consent_hosts: ConsentHosts,
    wait_for_approval: Option<Duration>,
    poll_every: Duration,
    replaying: bool,
    echo: bool,
    report: Report,
    revoked: bool,
    /// Differences shown so far: path, problem, step.
    seen: Vec<(String, String, u8)>,
}

impl Journey {
    fn say(&mut self, line: String) {
        if self.echo {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        }
        self.report.lines.push(line);
    }

    async fn steps(&mut self) {
        self.list_providers().await;
        let Some(customer) = self.create_customer().await else {
            for (step, name) in [
                (3, "create a consent"),
                (4, "read it back"),
                (5, "list its accounts"),
                (6, "revoke it"),
                (7, "read it again"),
            ] {
                self.skipped(step, name, "needs the customer of step 2");
            }
            return;
        };
        let Some(consent) = self.create_consent(&customer).await else {
            for (step, name) in [
                (4, "read it back"),
                (5, "list its accounts"),
                (6, "revoke it"),
                (7, "read it again"),
            ] {
                self.skipped(step, name, "needs the consent of step 3");
            }
            return;
        };
        let status = self.read_back(&consent).await;
        self.list_accounts(&customer, &consent, status).await;
        self.revoke(&consent).await;
        self.read_again(&consent).await;
    }

    async fn list_providers(&mut self) {
        let outcome = observe(&self.tap, 1, self.client.providers()).await;
        let mut differences = self.differences(&outcome, &expected::PROVIDERS, false);
        let summary = match &outcome.value {
            Ok(banks) if banks.is_empty() => {
                differences.push(note(
                    "data",
                    "is empty",
                    "no bank offers account information (roles[]=ais) to this key",
                ));
                "no banks".to_owned()
            }
            Ok(banks) => format!("{} banks", banks.len()),
            Err(_) => String::new(),
        };
        self.finish(
            1,
            "list providers",
            "GET /providers",
            &outcome,
            differences,
            summary,
        );
    }

    async fn create_customer(&mut self) -> Option<String> {
        let email = format!("finexer-check+{:08x}@example.com", rand::random::<u32>());
        let new = NewCustomer {
            name: "Finexer Contract Check",
            email: &email,
            user_ref: "finexer-check",
        };
        let outcome = observe(&self.tap, 2, self.client.create_customer(&new)).await;
        let differences = self.differences(&outcome, &expected::CUSTOMER, true);
        let id = match &outcome.value {
            Ok(customer) => Some(customer.id.clone()),
            Err(_) => raw_id(&outcome),
        };
        let summary = id
            .as_deref()
            .map(|id| format!("customer {id}"))
            .unwrap_or_default();
        self.report.customer_id.clone_from(&id);
        self.finish(
            2,
            "create a customer",
            "POST /customers",
            &outcome,
            differences,
            summary,
        );
        id
    }

    async fn create_consent(&mut self, customer: &str) -> Option<String> {
        let claims = StateClaims::new(
            "finexer-check",
            time::OffsetDateTime::now_utc().unix_timestamp(),
            900,
        );
        let token = match shared::state::sign(&claims, &*self.secrets) {
            Ok(token) => token,
            Err(e) => {
                self.report.breaking += 1;
                self.say(format!(
                    "3/{STEPS}  create a consent: cannot sign a state: {e}"
                ));
                return None;
            }
        };
        let mut return_url = self.callback_url.clone();
        return_url.query_pairs_mut().append_pair("state", &token);
        let new = NewConsent {
            customer,
            return_url: return_url.as_str(),
            provider: None,
            state_id: &claims.jti,
        };
        let outcome = observe(&self.tap, 3, self.client.create_consent(&new)).await;
        let mut differences = self.differences(&outcome, &expected::CONSENT, true);
        let id = match &outcome.value {
            Ok(consent) => Some(consent.id.clone()),
            Err(_) => raw_id(&outcome),
        };
        self.report.consent_id.clone_from(&id);
        let mut summary = String::new();
        if let Ok(consent) = &outcome.value {
            summary = format!("consent {}, {}", consent.id, consent.status);
            expect_status(
                &mut differences,
                consent,
                &ConsentStatus::Pending,
                "create-link sends the user on only from pending (a consent created with a customer)",
                true,
            );
            self.check_consent_page(&mut differences, consent);
            self.check_return_url(&mut differences, consent, &token);
            if consent.customer.as_deref().is_some_and(|c| c != customer) {
                differences.push(note(
                    "customer",
                    "is not the customer of step 2",
                    "the consent should belong to the customer it was created for",
                ));
            }
        }
        self.finish(
            3,
            "create a consent",
            "POST /consents",
            &outcome,
            differences,
            summary,
        );
        id
    }

    /// The page create-link would send the user to, as create-link checks it.
    fn check_consent_page(&self, differences: &mut Vec<Difference>, consent: &Consent) {
        let Some(url) = consent
            .redirect
            .as_ref()
            .and_then(|r| r.consent_url.as_deref())
        else {
            return;
        };
        if differences.iter().any(|d| d.path.starts_with("redirect")) {
            return;
        }
        if let Err(e) = consent_page_url(url, &self.consent_hosts, None, None, None) {
            let detail = match e {
                Error::FinexerInvalid(detail) | Error::FinexerUnavailable { detail, .. } => detail,
                other => other.to_string(),
            };
            differences.push(Difference {
                path: "redirect.consent_url".into(),
                problem: detail,
                hint: "create-link refuses such a page and revokes the consent; if the host is Finexer's, add it to FINEXER_CONSENT_HOSTS".into(),
                breaking: true,
            });
        }
    }

    /// Our `state` must come back on the redirect, so the return URL must keep it.
    fn check_return_url(&self, differences: &mut Vec<Difference>, consent: &Consent, token: &str) {
        let Some(returned) = consent
            .redirect
            .as_ref()
            .and_then(|r| r.return_url.as_deref())
        else {
            return;
        };
        let state = Url::parse(returned).ok().and_then(|url| {
            url.query_pairs()
                .find(|(key, _)| key == "state")
                .map(|(_, value)| value.into_owned())
        });
        let problem = match state {
            None => "lost our state parameter",
            // A recording keeps the parameter but not its value.
            Some(state) if state != token && !self.replaying => "changed our state parameter",
            Some(_) => return,
        };
        differences.push(Difference {
            path: "redirect.return_url".into(),
            problem: problem.into(),
            hint: "Finexer keeps every parameter of return_url on the redirect, which is how the callback gets the state back".into(),
            breaking: true,
        });
    }

    async fn read_back(&mut self, id: &str) -> Option<ConsentStatus> {
        let call = format!("GET /consents/{id}");
        let mut outcome = observe(&self.tap, 4, self.client.get_consent(id)).await;
        let mut waited = None;
        let pending_page = match (self.wait_for_approval, &outcome.value) {
            (Some(wait), Ok(consent)) if consent.status == ConsentStatus::Pending => {
                let page = consent
                    .redirect
                    .as_ref()
                    .and_then(|r| r.consent_url.clone());
                Some((wait, page.unwrap_or_else(|| "(no consent_url)".into())))
            }
            _ => None,
        };
        if let Some((wait, page)) = pending_page {
            if self.replaying {
                self.say("      (the recording waited for approval here)".into());
            } else {
                self.say(format!(
                    "      waiting up to {} s: open {page} and approve with a test bank",
                    wait.as_secs()
                ));
            }
            let started = Instant::now();
            while outcome
                .value
                .as_ref()
                .is_ok_and(|c| c.status == ConsentStatus::Pending)
                && self.keep_polling("GET", &format!("/consents/{id}"), started, wait)
            {
                tokio::time::sleep(self.poll_every).await;
                outcome = observe(&self.tap, 4, self.client.get_consent(id)).await;
            }
            waited = Some(started.elapsed());
        }
        let mut differences = self.differences(&outcome, &expected::CONSENT, false);
        let mut summary = String::new();
        if let Ok(consent) = &outcome.value {
            if consent.id != id {
                differences.push(Difference {
                    path: "id".into(),
                    problem: format!("is {:?}, not the consent asked for", consent.id),
                    hint: "the callback reads a consent by its id".into(),
                    breaking: true,
                });
            }
            summary = consent.status.to_string();
            match waited {
                Some(_) if consent.status == ConsentStatus::Pending => differences.push(note(
                    "status",
                    "still pending: nobody approved it in time",
                    "accounts are not checked",
                )),
                Some(after) if !self.replaying => {
                    summary = format!("{} after waiting {} s", consent.status, after.as_secs());
                }
                _ => {}
            }
            if waited.is_none() {
                expect_status(
                    &mut differences,
                    consent,
                    &ConsentStatus::Pending,
                    "nobody has opened its page yet",
                    false,
                );
            }
        }
        let status = outcome.value.as_ref().ok().map(|c| c.status.clone());
        self.finish(4, "read it back", &call, &outcome, differences, summary);
        status
    }

    async fn list_accounts(
        &mut self,
        customer: &str,
        consent: &str,
        status: Option<ConsentStatus>,
    ) {
        let authorized = status == Some(ConsentStatus::Authorized);
        let mut outcome = observe(
            &self.tap,
            5,
            self.client.bank_accounts(customer, Some(consent)),
        )
        .await;
        // Accounts may appear a few seconds after authorization (docs: H).
        let started = Instant::now();
        while authorized
            && outcome.value.as_ref().is_ok_and(Vec::is_empty)
            && self.keep_polling("GET", "/bank_accounts", started, ACCOUNTS_GRACE)
        {
            tokio::time::sleep(self.poll_every).await;
            outcome = observe(
                &self.tap,
                5,
                self.client.bank_accounts(customer, Some(consent)),
            )
            .await;
        }
        let mut differences = self.differences(&outcome, &expected::BANK_ACCOUNTS, false);
        let summary = match &outcome.value {
            Ok(accounts) if accounts.is_empty() && authorized => {
                differences.push(note(
                    "data",
                    "is empty for an authorized consent",
                    "accounts should appear within seconds of authorization",
                ));
                "no accounts".to_owned()
            }
            Ok(accounts) if accounts.is_empty() => {
                "no accounts (none before approval; an empty list is fine)".to_owned()
            }
            Ok(accounts) => format!("{} accounts", accounts.len()),
            Err(_) => String::new(),
        };
        self.finish(
            5,
            "list its accounts",
            "GET /bank_accounts",
            &outcome,
            differences,
            summary,
        );
    }

    async fn revoke(&mut self, id: &str) {
        let outcome = observe(&self.tap, 6, self.client.revoke_consent(id)).await;
        self.revoked = outcome.value.is_ok();
        let call = format!("POST /consents/{id}/revoke");
        self.finish_canceled(6, "revoke it", &call, &outcome);
    }

    async fn read_again(&mut self, id: &str) {
        let outcome = observe(&self.tap, 7, self.client.get_consent(id)).await;
        let call = format!("GET /consents/{id}");
        self.finish_canceled(7, "read it again", &call, &outcome);
    }

    /// Finishes a step whose answer is the consent, which must read canceled.
    fn finish_canceled(&mut self, step: u8, name: &str, call: &str, outcome: &Outcome<Consent>) {
        let mut differences = self.differences(outcome, &expected::CONSENT, false);
        let mut summary = String::new();
        if let Ok(consent) = &outcome.value {
            summary = consent.status.to_string();
            expect_status(
                &mut differences,
                consent,
                &ConsentStatus::Canceled,
                "a revoked consent reads canceled",
                true,
            );
        }
        self.finish(step, name, call, outcome, differences, summary);
    }

    /// The consent is revoked even when a step failed, and the customer named.
    async fn clean_up(&mut self) {
        if let (Some(id), false) = (self.report.consent_id.clone(), self.revoked) {
            let outcome = observe(&self.tap, 8, self.client.revoke_consent(&id)).await;
            let status = outcome.status.map_or("---".to_owned(), |s| s.to_string());
            let line = match &outcome.value {
                Ok(consent) => format!("cleanup  revoked consent {id}: {}", consent.status),
                Err(e) => {
                    self.report.breaking += 1;
                    format!(
                        "cleanup  could not revoke consent {id} ({e}): revoke it in Finexer's dashboard"
                    )
                }
            };
            self.say(format!("{line}  [POST /consents/{id}/revoke {status}]"));
        }
        if let Some(customer) = self.report.customer_id.clone().filter(|_| !self.replaying) {
            self.say(format!(
                "Left behind: customer {customer} (Finexer's API has no delete; remove it in Finexer's dashboard if you wish)."
            ));
        }
    }

    async fn check_webhook(&mut self, check: WebhookCheck) -> Option<webhook::Delivery> {
        let delivery = match check.source {
            EventSource::Listen(listener) => {
                let url = listener.url().to_owned();
                let delivery = listener.receive(check.wait).await;
                if delivery.is_none() {
                    self.report.breaking += 1;
                    self.say(format!(
                        "webhook  FAILED: no delivery reached {url} within {} s (is the webhook pointed there, for consent events?)",
                        check.wait.as_secs()
                    ));
                }
                delivery
            }
            EventSource::Saved(path) => match webhook::read_saved(&path) {
                Ok(delivery) => Some(delivery),
                Err(e) => {
                    self.report.breaking += 1;
                    self.say(format!("webhook  FAILED: {e}"));
                    None
                }
            },
        }?;
        let (summary, differences) = webhook::check(
            &delivery,
            check.secret.expose_secret().as_bytes(),
            time::OffsetDateTime::now_utc(),
        );
        let verdict = self.verdict(
            None,
            &format!("fx-signature verified, {summary}"),
            None,
            &differences,
        );
        self.say(format!(
            "webhook  {:<20} {:<42} {:>3}  {verdict}",
            "one delivered event", "POST (fx-signature)", "---"
        ));
        Some(delivery)
    }

    fn keep_polling(&self, method: &str, path: &str, started: Instant, limit: Duration) -> bool {
        if self.replaying {
            self.tap
                .unused()
                .first()
                .is_some_and(|next| next.method == method && next.path == path)
        } else {
            started.elapsed() + self.poll_every <= limit
        }
    }

    fn skipped(&mut self, step: u8, name: &str, why: &str) {
        self.say(format!(
            "{step}/{STEPS}  {name:<20} {:<42} {:>3}  SKIPPED: {why}",
            "", "---"
        ));
    }

    /// The answer against `shape` (or the error envelope), and whether our
    /// client could read what the table accepts.
    fn differences<T>(
        &self,
        outcome: &Outcome<T>,
        shape: &Shape,
        created: bool,
    ) -> Vec<Difference> {
        let mut found = Vec::new();
        let success = outcome.status.is_some_and(|s| (200..300).contains(&s));
        match (&outcome.raw, success) {
            (Some(raw), true) => found.extend(expected::check(shape, raw, created)),
            (None, true) => found.push(Difference {
                path: "(body)".into(),
                problem: "is not JSON".into(),
                hint: "Finexer answers JSON".into(),
                breaking: true,
            }),
            (Some(raw), false) => found.extend(
                expected::check(&expected::ERROR, raw, false)
                    .into_iter()
                    .map(|d| Difference {
                        breaking: false,
                        ..d
                    }),
            ),
            (None, false) => {}
        }
        if let (true, Err(e)) = (success, &outcome.value) {
            found.push(Difference {
                path: "(whole answer)".into(),
                problem: format!("our client could not read it: {e}"),
                hint: "the functions would fail the same way".into(),
                breaking: true,
            });
        }
        found
    }

    fn finish<T>(
        &mut self,
        step: u8,
        name: &str,
        call: &str,
        outcome: &Outcome<T>,
        differences: Vec<Difference>,
        summary: String,
    ) {
        let failure = match (&outcome.value, outcome.status) {
            (Err(e), status) if !status.is_some_and(|s| (200..300).contains(&s)) => {
                let mut text = failure(e, status);
                if outcome.attempts > 1 {
                    text = format!("after {} attempts: {text}", outcome.attempts);
                }
                Some(text)
            }
            _ => None,
        };
        let mut summary = summary;
        if outcome.attempts > 1 {
            summary = format!("{summary} (after {} attempts)", outcome.attempts);
        }
        let verdict = self.verdict(Some(step), &summary, failure, &differences);
        let status = outcome.status.map_or("---".to_owned(), |s| s.to_string());
        self.say(format!(
            "{step}/{STEPS}  {name:<20} {call:<42} {status:>3}  {verdict}"
        ));
    }

    /// The step's verdict. A difference an earlier step already showed is
    /// named again but not counted again.
    fn verdict(
        &mut self,
        step: Option<u8>,
        summary: &str,
        failure: Option<String>,
        differences: &[Difference],
    ) -> String {
        let breaking = differences.iter().filter(|d| d.breaking).count();
        let mut listed = Vec::new();
        for d in differences {
            let earlier = self
                .seen
                .iter()
                .find(|(path, problem, _)| *path == d.path && *problem == d.problem)
                .map(|(_, _, step)| *step);
            match earlier {
                Some(earlier) => {
                    listed.push(format!("{}: {} [as in step {earlier}]", d.path, d.problem))
                }
                None => {
                    if d.breaking {
                        self.report.breaking += 1;
                    } else {
                        self.report.notes += 1;
                    }
                    if let Some(step) = step {
                        self.seen.push((d.path.clone(), d.problem.clone(), step));
                    }
                    listed.push(format!(
                        "{d} [{}]",
                        if d.breaking {
                            "breaks the journey"
                        } else {
                            "note"
                        }
                    ));
                }
            }
        }
        self.report.breaking += usize::from(failure.is_some());
        match (failure, breaking) {
            (Some(failure), _) => {
                let mut text = if failure.starts_with("after ") {
                    format!("FAILED {failure}")
                } else {
                    format!("FAILED: {failure}")
                };
                if !listed.is_empty() {
                    text = format!("{text}; {}", listed.join("; "));
                }
                text
            }
            (None, 0) if listed.is_empty() => format!("OK: {summary}"),
            (None, 0) => format!("OK: {summary}; {}", listed.join("; ")),
            (None, _) => format!("DIFFERENT: {}", listed.join("; ")),
        }
    }

    fn summary(&mut self) {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let notes = plural(self.report.notes, "note", "notes");
        let line = match (self.report.breaking, self.report.notes) {
            (0, 0) => "Result: no difference from docs/finexer-api.md.".to_owned(),
            (0, _) => format!("Result: no difference that breaks a journey; {notes} above."),
            (breaking, _) => format!(
                "Result: {} that would break a journey, {notes}. docs/finexer-api.md says what each assumption rests on; a recording (--record DIR) shows the answers.",
                plural(breaking, "difference or failure", "differences or failures")
            ),
        };
        self.say(line);
    }
}

fn note(path: &str, problem: &str, hint: &str) -> Difference {
    Difference {
        path: path.into(),
        problem: problem.into(),
        hint: hint.into(),
        breaking: false,
    }
}

/// A known but unexpected status is a difference; an unknown one is already
/// reported by the table, and only learns what was expected here.
fn expect_status(
    differences: &mut Vec<Difference>,
    consent: &Consent,
    wanted: &ConsentStatus,
    why: &str,
    breaking: bool,
) {
    if let Some(reported) = differences.iter_mut().find(|d| d.path == "status") {
        reported.hint = format!("{}; expected {wanted} here", reported.hint);
        return;
    }
    if consent.status != *wanted {
        differences.push(Difference {
            path: "status".into(),
            problem: format!("is {}, expected {wanted}", consent.status),
            hint: why.into(),
            breaking,
        });
    }
}

fn raw_id<T>(outcome: &Outcome<T>) -> Option<String> {
    let success = outcome.status.is_some_and(|s| (200..300).contains(&s));
    outcome
        .raw
        .as_ref()
        .filter(|_| success)
        .and_then(|raw| raw.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Why a call failed, and what to look at.
fn failure(error: &Error, status: Option<u16>) -> String {
    let hint = match (error, status) {
        (_, Some(401 | 403)) => {
            "the key was refused: FINEXER_API_KEY is sent as the Basic auth user name with an empty password (docs: Transport)"
        }
        (_, Some(404)) => "no such route or object: the path may differ from docs/finexer-api.md",
        (_, Some(405)) => {
            "the route does not take this method: it may differ from docs/finexer-api.md"
        }
        (_, Some(415)) => {
            "the body's encoding was refused: we send application/x-www-form-urlencoded (docs: Transport)"
        }
        (_, Some(400 | 422)) => {
            "a parameter was refused: our form fields may differ from docs/finexer-api.md"
        }
        (_, Some(429)) => "throttled: try again later",
        (_, Some(599)) => "the recording does not follow these steps",
        (_, Some(500..)) => "Finexer failed: try again later",
        (_, Some(300..=399)) => {
            "Finexer answered a redirect, which is not followed: check FINEXER_BASE_URL"
        }
        (_, None) => "could not reach FINEXER_BASE_URL",
        _ => "",
    };
    if hint.is_empty() {
        error.to_string()
    } else {
        format!("{error} ({hint})")
    }
}
