//! Typed client for the Finexer API. Every Finexer-specific detail (paths,
//! field names, encodings, status names) lives in this module, so a correction
//! to `docs/finexer-api.md` touches one place.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, Result};
use crate::secrets::SecretSource;
use crate::timestamp::Timestamp;

use crate::consent::ConsentStatus;

/// A time in a Finexer consent: RFC 3339, or a bare date (`expiry_date`
/// may be one; read as midnight UTC). Any other text is logged and read as
/// absent: an odd time must not cost the consent its outcome.
fn finexer_time<'de, D>(deserializer: D) -> std::result::Result<Option<Timestamp>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let date = || {
        let date = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(&text, date).ok()
    };
    let at = Timestamp::parse(&text)
        .ok()
        .or_else(|| date().map(|date| Timestamp::from(date.midnight().assume_utc())));
    if at.is_none() {
        tracing::warn!(time = %text, "Finexer sent a time we cannot read; ignored");
    }
    Ok(at)
}

#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Redirect {
    #[serde(default)]
    pub return_url: Option<String>,
    #[serde(default)]
    pub consent_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Consent {
    pub id: String,
    pub status: ConsentStatus,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default, deserialize_with = "finexer_time")]
    pub authed_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "finexer_time")]
    pub expiry_date: Option<Timestamp>,
    /// The user's last re-confirmation (the UK 90-day rule).
    #[serde(default, deserialize_with = "finexer_time")]
    pub renewed_at: Option<Timestamp>,
    #[serde(default)]
    pub redirect: Option<Redirect>,
}

/// A bank account, passed through to our callers as Finexer shapes it.
pub type BankAccount = serde_json::Value;

/// A bank as `GET /providers` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    /// What `provider` of a new consent names.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct List<T> {
    data: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

pub struct NewCustomer<'a> {
    pub name: &'a str,
    /// Finexer requires one.
    pub email: &'a str,
    /// Our user id, kept in Finexer's metadata for support and reconciliation.
    pub user_ref: &'a str,
}

pub struct NewConsent<'a> {
    pub customer: &'a str,
    pub return_url: &'a str,
    pub provider: Option<&'a str>,
    /// Our state id, so a consent created at Finexer but never recorded by us
    /// can be traced back.
    pub state_id: &'a str,
}

/// Whether a failed call may be sent again without risking a duplicate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads and idempotent writes: retry on throttling, 5xx and network errors.
    Safe,
    /// Creates: retry only when the request certainly did not reach Finexer
    /// (connection refused) or was refused before any work (429).
    OnlyIfNotReceived,
}

const MAX_ATTEMPTS: u32 = 3;
/// The least time worth starting an attempt with.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);
/// Largest answer body read from Finexer, success or error. Its answers are
/// small JSON documents (100 accounts at most); more is a fault or an attack,
/// and is refused before it is buffered whole.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Longest `Retry-After` we wait for inside one request; longer ones are passed
/// on to our caller.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);

/// Another way for a built request to reach Finexer than reqwest's network
/// (feature `test-util`, never in a Lambda): the overhead benchmark answers
/// in-process, so that its figure is our own CPU time (request building,
/// auth, JSON) without the network stack's; finexer-check records the
/// exchange; unit tests script answers.
#[cfg(any(test, feature = "test-util"))]
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, request: reqwest::Request) -> reqwest::Result<reqwest::Response>;
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait::async_trait]
impl Transport for reqwest::Client {
    async fn send(&self, request: reqwest::Request) -> reqwest::Result<reqwest::Response> {
        self.execute(request).await
    }
}

#[derive(Clone)]
pub struct FinexerClient {
    /// Builds requests and sends them, unless `transport` replaces it.
    http: reqwest::Client,
    #[cfg(any(test, feature = "test-util"))]
    transport: Option<Arc<dyn Transport>>,
    base: Url,
    secrets: Arc<dyn SecretSource>,
    backoff: Duration,
    /// Per-attempt timeout, shortened to the request's budget.
    timeout: Duration,
}

impl FinexerClient {
    pub fn new(base: Url, timeout: Duration, secrets: Arc<dyn SecretSource>) -> Result<Self> {
        let http = crate::net::http_client_builder_trusting(crate::net::FINEXER_CA_BUNDLE)?
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .user_agent(concat!("finexer-connect/", env!("CARGO_PKG_VERSION")))
            // Finexer answers, it does not redirect: following one would send
            // our API key (Basic auth) wherever the Location header points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            #[cfg(any(test, feature = "test-util"))]
            transport: None,
            http,
            base,
            secrets,
            backoff: Duration::from_millis(100),
            timeout,
        })
    }

    /// Sends through `transport` instead of the network (benchmarks, tools).
    #[cfg(any(test, feature = "test-util"))]
    pub fn with_transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    async fn send(&self, request: reqwest::Request) -> reqwest::Result<reqwest::Response> {
        #[cfg(any(test, feature = "test-util"))]
        if let Some(transport) = &self.transport {
            return transport.send(request).await;
        }
        self.http.execute(request).await
    }

    /// Opens a connection to Finexer through the client's pool, ahead of
    /// the first request (the start-up prefetch, [`crate::prefetch`]): a
    /// `HEAD` of the base URL, without the API key. Any HTTP answer will do.
    pub async fn warm_up(&self) -> Result<()> {
        self.http
            .head(self.base.clone())
            .send()
            .await
            .map(drop)
            .map_err(|e| unavailable(format!("HEAD {} (warm-up): {e}", self.base), None))
    }

    /// Shorter backoff between retries, for tests.
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    pub async fn create_customer(&self, customer: &NewCustomer<'_>) -> Result<Customer> {
        let form = vec![
            ("name", customer.name.to_owned()),
            ("email", customer.email.to_owned()),
            ("metadata[user_ref]", customer.user_ref.to_owned()),
        ];
        self.call(
            "create_customer",
            Method::POST,
            "/customers",
            &[],
            Some(&form),
            Retry::OnlyIfNotReceived,
        )
        .await
    }

    pub async fn create_consent(&self, consent: &NewConsent<'_>) -> Result<Consent> {
        let mut form = vec![
            ("customer", consent.customer.to_owned()),
            ("return_url", consent.return_url.to_owned()),
            ("scopes[]", "accounts".to_owned()),
            ("scopes[]", "balance".to_owned()),
            ("scopes[]", "transactions".to_owned()),
            ("metadata[state_id]", consent.state_id.to_owned()),
        ];
        if let Some(provider) = consent.provider {
            form.push(("provider", provider.to_owned()));
        }
        self.call(
            "create_consent",
            Method::POST,
            "/consents",
            &[],
            Some(&form),
            Retry::OnlyIfNotReceived,
        )
        .await
    }

    pub async fn get_consent(&self, id: &str) -> Result<Consent> {
        let path = format!("/consents/{}", encode_segment(id));
        self.call("get_consent", Method::GET, &path, &[], None, Retry::Safe)
            .await
    }

    /// Records the user's re-confirmation (the UK 90-day rule): Finexer's
    /// consent update with `renewed_at`. Reconstructed from Finexer's docs
    /// with medium confidence (docs/finexer-api.md); this is its one place.
    pub async fn renew_consent(&self, id: &str, renewed_at: Timestamp) -> Result<Consent> {
        let path = format!("/consents/{}", encode_segment(id));
        let form = [("renewed_at", renewed_at.to_string())];
        // Setting the same time twice is harmless: safe to retry.
        self.call(
            "renew_consent",
            Method::POST,
            &path,
            &[],
            Some(&form),
            Retry::Safe,
        )
        .await
    }

    /// Revoking is idempotent at Finexer (a revoked consent reads `canceled`).
    pub async fn revoke_consent(&self, id: &str) -> Result<Consent> {
        let path = format!("/consents/{}/revoke", encode_segment(id));
        self.call(
            "revoke_consent",
            Method::POST,
            &path,
            &[],
            Some(&[]),
            Retry::Safe,
        )
        .await
    }

    /// `customer` is always sent: Finexer answers 400 `missing_identity` without it.
    pub async fn bank_accounts(
        &self,
        customer: &str,
        consent: Option<&str>,
    ) -> Result<Vec<BankAccount>> {
        let mut query = vec![("customer", customer)];
        if let Some(consent) = consent {
            query.push(("consent", consent));
        }
        query.push(("limit", "100"));
        let list: List<BankAccount> = self
            .call(
                "bank_accounts",
                Method::GET,
                "/bank_accounts",
                &query,
                None,
                Retry::Safe,
            )
            .await?;
        Ok(list.data)
    }

    /// The banks offering account information (`roles[]=ais`), first 100.
    pub async fn providers(&self) -> Result<Vec<Provider>> {
        let query = [("roles[]", "ais"), ("limit", "100")];
        let list: List<Provider> = self
            .call(
                "providers",
                Method::GET,
                "/providers",
                &query,
                None,
                Retry::Safe,
            )
            .await?;
        Ok(list.data)
    }

    /// The one path of every Finexer call: its attempts, and its metrics
    /// (one line per call: count, latency with retries, retries, error).
    async fn call<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        form: Option<&[(&str, String)]>,
        retry: Retry,
    ) -> Result<T> {
        let secrets = self.secrets.finexer_api_key().await?;
        let started = std::time::Instant::now();
        let mut retries = 0;
        let result = self
            .attempts(&secrets, method, path, query, form, retry, &mut retries)
            .await;
        // An error the caller is answered 5xx for: Finexer unavailable,
        // or refusing our own credentials.
        let failed = result.as_ref().is_err_and(|e| e.status() >= 500);
        crate::metrics::finexer_call(operation, started.elapsed(), retries, failed);
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempts<T: DeserializeOwned>(
        &self,
        secrets: &crate::secrets::FinexerApiKey,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        form: Option<&[(&str, String)]>,
        retry: Retry,
        retries: &mut u32,
    ) -> Result<T> {
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}{}",
            self.base.path().trim_end_matches('/'),
            path
        ));
        // Never send a bare `?`: Finexer answers 400 to it.
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }

        let mut attempt = 1;
        loop {
            // Each attempt ends within the request's budget, whatever the
            // configured timeout.
            let budget = crate::deadline::remaining();
            if budget.is_some_and(|left| left < MIN_ATTEMPT) {
                return Err(unavailable(
                    format!("{method} {path}: no time left in the request for the call"),
                    None,
                ));
            }
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .timeout(budget.map_or(self.timeout, |left| left.min(self.timeout)))
                .basic_auth(secrets.finexer_api_key.expose_secret(), Some(""));
            if let Some(form) = form {
                request = request.form(form);
            }
            let sent = match request.build() {
                Ok(request) => self.send(request).await,
                Err(e) => Err(e),
            };
            let failure = match sent {
                Ok(response) if response.status().is_success() => {
                    let body = read_capped(response, &method, path).await?;
                    return serde_json::from_slice::<T>(&body).map_err(|e| {
                        unavailable(format!("{method} {path}: unreadable answer: {e}"), None)
                    });
                }
                // Not retried: the same request would be redirected again.
                Ok(response) if response.status().is_redirection() => {
                    return Err(unavailable(
                        format!(
                            "{method} {path}: answered a redirect (HTTP {}), which is not followed",
                            response.status().as_u16()
                        ),
                        None,
                    ));
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(&response);
                    // Only read for its error envelope: an unreadable or
                    // oversized one just means there is none.
                    let body = read_capped(response, &method, path)
                        .await
                        .unwrap_or_default();
                    Failure::Status(status, retry_after, body)
                }
                Err(e) => Failure::Transport(e),
            };

            let retryable = match (&failure, retry) {
                (Failure::Status(s, ..), _) if *s == StatusCode::TOO_MANY_REQUESTS => true,
                (Failure::Status(s, ..), Retry::Safe) => s.is_server_error(),
                (Failure::Transport(_), Retry::Safe) => true,
                (Failure::Transport(e), Retry::OnlyIfNotReceived) => e.is_connect(),
                _ => false,
            };
            let wait = failure
                .retry_after()
                .unwrap_or_else(|| full_jitter(self.backoff * 2u32.pow(attempt - 1)));
            let in_time =
                crate::deadline::remaining().is_none_or(|left| wait + MIN_ATTEMPT <= left);
            if !retryable || attempt >= MAX_ATTEMPTS || wait > MAX_INLINE_WAIT || !in_time {
                return Err(failure.into_error(&method, path));
            }
            tracing::warn!(%method, path, attempt, "Finexer call failed; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
            *retries += 1;
        }
    }
}

enum Failure {
    Status(StatusCode, Option<Duration>, Vec<u8>),
    Transport(reqwest::Error),
}

impl Failure {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status(_, retry_after, _) => *retry_after,
            Failure::Transport(_) => None,
        }
    }

    fn into_error(self, method: &Method, path: &str) -> Error {
        match self {
            Failure::Status(status, retry_after, body) => {
                let parsed = serde_json::from_slice::<ErrorEnvelope>(&body).ok();
                let code = parsed
                    .as_ref()
                    .and_then(|e| e.error.code.clone())
                    .unwrap_or_else(|| "unknown".into());
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    return unavailable(
                        format!("{method} {path}: HTTP {} ({code})", status.as_u16()),
                        retry_after,
                    );
                }
                if status == StatusCode::NOT_FOUND {
                    // The handlers decide what a missing Finexer object means.
                    return Error::FinexerRejected {
                        status: 404,
                        code,
                        message: "not found".into(),
                    };
                }
                let message = parsed
                    .and_then(|e| e.error.message)
                    .unwrap_or_else(|| "request refused".into());
                Error::FinexerRejected {
                    status: status.as_u16(),
                    code,
                    // Bounded: the text may reach our caller.
                    message: message.chars().take(200).collect(),
                }
            }
            Failure::Transport(e) => {
                let kind = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "transport error"
                };
                unavailable(format!("{method} {path}: {kind}"), None)
            }
        }
    }
}

fn unavailable(detail: String, retry_after: Option<Duration>) -> Error {
    Error::FinexerUnavailable {
        detail,
        retry_after,
    }
}

/// The answer's body, refused once it passes [`MAX_ANSWER_BYTES`]: early when
/// its declared length says so, otherwise while it is read.
async fn read_capped(
    mut response: reqwest::Response,
    method: &Method,
    path: &str,
) -> Result<Vec<u8>> {
    let too_large = || unavailable(format!("{method} {path}: answer larger than 1 MiB"), None);
    // The header as sent, or the body's exact size where the body knows it.
    let declared = response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .or_else(|| response.content_length());
    if declared.is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(unavailable(
                    format!("{method} {path}: unreadable answer: {e}"),
                    None,
                ));
            }
        }
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    parse_retry_after(value.to_str().ok()?, std::time::SystemTime::now())
}

/// `Retry-After` in either form (RFC 9110 §10.2.3): seconds, or an HTTP
/// date, which counts from `now` (a date in the past means now).
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(Duration::from_secs(3600)))
}

/// A random wait up to `cap` ("full jitter"), so clients that failed
/// together do not retry together.
fn full_jitter(cap: Duration) -> Duration {
    cap.mul_f64(rand::random::<f64>())
}

/// Ids are opaque: escape them rather than trusting their alphabet.
fn encode_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// Hosts that Finexer's `redirect.consent_url` may point at.
///
/// Entries are exact host names, or `*.<domain>` for every subdomain of
/// `<domain>` (not `<domain>` itself). Ports are not compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentHosts(Vec<String>);

impl ConsentHosts {
    /// Parses a comma-separated list of host names (lower-cased; no scheme,
    /// port or path). Err(reason) on an empty list or a bad entry.
    pub fn parse(raw: &str) -> std::result::Result<ConsentHosts, String> {
        let mut hosts = Vec::new();
        for entry in raw.split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                // Strict: "a,,b" or a trailing comma is more likely a typo
                // than an intent.
                return Err("empty entry".into());
            }
            let valid = match entry.strip_prefix("*.") {
                // A wildcard over a bare label ("*.com") would be a whole TLD.
                Some(domain) => domain.contains('.') && valid_host(domain),
                None => valid_host(&entry),
            };
            if !valid {
                return Err(format!(
                    "{entry:?} is not a host name (no scheme, port or path; one leading \"*.\" at most)"
                ));
            }
            hosts.push(entry);
        }
        if hosts.is_empty() {
            return Err("no hosts".into());
        }
        Ok(ConsentHosts(hosts))
    }

    /// Derived from FINEXER_BASE_URL: its own host, plus, when that host is
    /// `api.<domain>`, `<domain>` and every subdomain of `<domain>`.
    pub fn derived_from(base: &Url) -> ConsentHosts {
        let mut hosts = Vec::new();
        if let Some(host) = base.host_str() {
            hosts.push(host.to_ascii_lowercase());
            if let Some(url::Host::Domain(domain)) = base.host() {
                let domain = domain.to_ascii_lowercase();
                match domain.strip_prefix("api.") {
                    Some(parent) if parent.contains('.') => {
                        hosts.push(parent.to_owned());
                        hosts.push(format!("*.{parent}"));
                    }
                    _ => {}
                }
            }
        }
        ConsentHosts(hosts)
    }

    pub fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.0.iter().any(|entry| match entry.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|sub| !sub.is_empty()),
            None => *entry == host,
        })
    }
}

/// A lower-case DNS name, IPv4 address or bracketed IPv6 address, in the form
/// `Url::host_str` gives, so that entries compare equal to parsed URLs' hosts.
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// 127.0.0.0/8, ::1 or `localhost`: the only hosts plain http may name, since
/// traffic to them never leaves the machine (the sandbox serves its pages so).
fn loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `consent_url` with the consent page options Finexer reads from its query.
///
/// The URL is where we send the user's browser, so it is checked first: https
/// (http only to a loopback host), no user info, and a host in `hosts`.
/// A refusal is [`Error::FinexerInvalid`] (a 502); its detail never includes
/// the URL's query, which may carry tokens.
pub fn consent_page_url(
    consent_url: &str,
    hosts: &ConsentHosts,
    template: Option<&str>,
    skip_info: Option<bool>,
    skip_qr: Option<bool>,
) -> Result<Url> {
    let mut url = Url::parse(consent_url)
        .map_err(|_| Error::FinexerInvalid("consent_url refused: not a URL".into()))?;
    let refused = |reason: String| Error::FinexerInvalid(format!("consent_url refused: {reason}"));
    match url.scheme() {
        "https" => {}
        "http" if loopback_host(&url) => {}
        "http" => return Err(refused("plain http to a non-loopback host".into())),
        other => return Err(refused(format!("scheme {other:?} is not allowed"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("it carries user info".into()));
    }
    match url.host_str() {
        Some(host) if hosts.allows(host) => {}
        Some(host) => return Err(refused(format!("host {host:?} is not allowed"))),
        None => return Err(refused("it has no host".into())),
    }
    let mut extra: Vec<(&str, String)> = Vec::new();
    if let Some(template) = template {
        extra.push(("template", template.to_owned()));
    }
    if let Some(skip) = skip_info {
        extra.push(("skip_info", skip.to_string()));
    }
    if let Some(skip) = skip_qr {
        extra.push(("skip_qr", skip.to_string()));
    }
    if !extra.is_empty() {
        url.query_pairs_mut().extend_pairs(extra);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::secrets::{AppSecrets, StaticSecrets};

    /// Answers from a script and keeps what it was sent.
    struct Scripted {
        answers: Mutex<Vec<http::Response<reqwest::Body>>>,
        seen: Mutex<Vec<(String, String, Option<String>)>>,
    }

    #[async_trait::async_trait]
    impl Transport for Scripted {
        async fn send(&self, request: reqwest::Request) -> reqwest::Result<reqwest::Response> {
            let auth = request
                .headers()
                .get(reqwest::header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned());
            self.seen.lock().unwrap().push((
                request.method().to_string(),
                request.url().path().to_owned(),
                auth,
            ));
            let response = self.answers.lock().unwrap().remove(0);
            Ok(reqwest::Response::from(response))
        }
    }

    fn answer(status: u16, body: impl Into<reqwest::Body>) -> http::Response<reqwest::Body> {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap()
    }

    fn client(answers: Vec<(u16, &'static str)>) -> (FinexerClient, Arc<Scripted>) {
        client_answering(answers.into_iter().map(|(s, b)| answer(s, b)).collect())
    }

    fn client_answering(
        answers: Vec<http::Response<reqwest::Body>>,
    ) -> (FinexerClient, Arc<Scripted>) {
        let secrets = AppSecrets::parse(
            r#"{"finexer_api_key":"sk_test","state_keys":[{"kid":"k","key":"0123456789abcdef0123456789abcdef"}]}"#,
        )
        .unwrap();
        let scripted = Arc::new(Scripted {
            answers: Mutex::new(answers),
            seen: Mutex::new(Vec::new()),
        });
        let client = FinexerClient::new(
            Url::parse("http://127.0.0.1:9/v1/").unwrap(),
            Duration::from_secs(1),
            Arc::new(StaticSecrets(Arc::new(secrets))),
        )
        .unwrap()
        .with_backoff(Duration::from_millis(1))
        .with_transport(scripted.clone());
        (client, scripted)
    }

    #[tokio::test]
    async fn a_replaced_transport_gets_the_whole_request_and_its_answer_is_parsed() {
        let (client, scripted) = client(vec![
            (503, r#"{"error":{"code":"busy"}}"#),
            (
                200,
                r#"{"id":"bc_1","object":"consent","status":"authorized","customer":"cus_1"}"#,
            ),
        ]);
        let consent = client.get_consent("bc_1").await.unwrap();
        assert_eq!(consent.id, "bc_1");
        assert_eq!(consent.status, ConsentStatus::Authorized);
        let seen = scripted.seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "a safe call is retried after a 503");
        assert_eq!(seen[0].0, "GET");
        assert_eq!(seen[0].1, "/v1/consents/bc_1");
        assert!(seen[0].2.as_deref().unwrap().starts_with("Basic "));
    }

    #[tokio::test]
    async fn an_unreadable_answer_is_unavailable_not_a_panic() {
        let (client, _) = client(vec![(200, "<html>")]);
        let error = client.get_consent("bc_1").await.unwrap_err();
        assert!(
            matches!(error, Error::FinexerUnavailable { .. }),
            "{error:?}"
        );
    }

    /// A body of unknown length, as a chunked answer from the network has,
    /// arriving in `chunks`; and then never ending when `endless`.
    async fn streamed(chunks: Vec<bytes::Bytes>, endless: bool) -> reqwest::Body {
        use futures::StreamExt;
        use http_body_util::BodyExt;
        let mut frames = Vec::new();
        for chunk in chunks {
            // `Full` makes the frame: http-body is no direct dependency.
            frames.push(http_body_util::Full::new(chunk).frame().await.unwrap());
        }
        let rest = if endless {
            futures::stream::pending().left_stream()
        } else {
            futures::stream::empty().right_stream()
        };
        let stream = futures::stream::iter(frames).chain(rest);
        reqwest::Body::wrap(http_body_util::StreamBody::new(stream))
    }

    fn pieces(body: impl Into<bytes::Bytes>, size: usize) -> Vec<bytes::Bytes> {
        let body = body.into();
        (0..body.len())
            .step_by(size)
            .map(|at| body.slice(at..(at + size).min(body.len())))
            .collect()
    }

    fn too_large(error: &Error) -> bool {
        matches!(
            error,
            Error::FinexerUnavailable { detail, retry_after: None }
                if detail == "GET /consents/bc_1: answer larger than 1 MiB"
        )
    }

    #[tokio::test]
    async fn a_redirect_is_unavailable_and_sent_once() {
        let redirect = http::Response::builder()
            .status(302)
            .header("location", "https://evil.example/")
            .body(reqwest::Body::from(""))
            .unwrap();
        let (client, scripted) = client_answering(vec![redirect]);
        let error = client.get_consent("bc_1").await.unwrap_err();
        assert!(
            matches!(
                &error,
                Error::FinexerUnavailable { detail, retry_after: None }
                    if detail == "GET /consents/bc_1: answered a redirect (HTTP 302), which is not followed"
            ),
            "{error:?}"
        );
        assert_eq!(scripted.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_answer_over_1_mib_is_refused_from_its_content_length() {
        let body = vec![b' '; 2 * MAX_ANSWER_BYTES];
        let sized = answer(200, body.clone());
        let mut declared = answer(200, body);
        declared.headers_mut().insert(
            reqwest::header::CONTENT_LENGTH,
            (2 * MAX_ANSWER_BYTES).into(),
        );
        // Declared by the header alone, over a body that never ends: refused
        // without reading it.
        let mut endless = answer(200, streamed(vec!["{".into()], true).await);
        endless.headers_mut().insert(
            reqwest::header::CONTENT_LENGTH,
            (MAX_ANSWER_BYTES + 1).into(),
        );
        for response in [sized, declared, endless] {
            let (client, scripted) = client_answering(vec![response]);
            let error = tokio::time::timeout(Duration::from_secs(5), client.get_consent("bc_1"))
                .await
                .expect("the body is not read")
                .unwrap_err();
            assert!(too_large(&error), "{error:?}");
            assert_eq!(scripted.seen.lock().unwrap().len(), 1, "not retried");
        }
    }

    #[tokio::test]
    async fn an_answer_over_1_mib_without_a_length_is_refused_while_read() {
        // A body built from bytes tells its size even without the header.
        assert_eq!(
            reqwest::Response::from(answer(200, vec![0u8; 10])).content_length(),
            Some(10)
        );
        let response = reqwest::Response::from(answer(200, streamed(pieces("{}", 1), false).await));
        assert_eq!(response.content_length(), None);
        assert!(
            response
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .is_none()
        );

        let body = streamed(pieces(vec![b' '; 2 * MAX_ANSWER_BYTES], 64 * 1024), false).await;
        let (client, scripted) = client_answering(vec![answer(200, body)]);
        let error = client.get_consent("bc_1").await.unwrap_err();
        assert!(too_large(&error), "{error:?}");
        assert_eq!(scripted.seen.lock().unwrap().len(), 1, "not retried");
    }

    #[tokio::test]
    async fn an_answer_just_under_1_mib_is_parsed() {
        let head = r#"{"id":"bc_1","status":"pending","provider":""#;
        let tail = r#""}"#;
        let filler = "x".repeat(MAX_ANSWER_BYTES - 16 - head.len() - tail.len());
        let body = format!("{head}{filler}{tail}");
        assert!(body.len() < MAX_ANSWER_BYTES);
        // Once whole, once in pieces of unknown total length.
        let chunked = streamed(pieces(body.clone(), 100_000), false).await;
        let (client, _) = client_answering(vec![answer(200, body), answer(200, chunked)]);
        for _ in 0..2 {
            let consent = client.get_consent("bc_1").await.unwrap();
            assert_eq!(consent.id, "bc_1");
            assert_eq!(consent.provider.unwrap().len(), filler.len());
        }
    }

    #[tokio::test]
    async fn an_oversized_error_body_is_an_error_without_an_envelope() {
        let body = format!(
            r#"{{"error":{{"code":"bad_provider","message":"{}"}}}}"#,
            "x".repeat(MAX_ANSWER_BYTES)
        );
        let (client, scripted) = client_answering(vec![answer(400, body)]);
        let error = client.get_consent("bc_1").await.unwrap_err();
        assert!(
            matches!(&error, Error::FinexerRejected { status: 400, code, message }
                if code == "unknown" && message == "request refused"),
            "{error:?}"
        );
        assert_eq!(scripted.seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn consent_hosts_derived_from_an_api_host_cover_its_domain() {
        let hosts = ConsentHosts::derived_from(&Url::parse("https://api.finexer.com").unwrap());
        assert_eq!(
            hosts,
            ConsentHosts::parse("api.finexer.com, finexer.com, *.finexer.com").unwrap()
        );
        for host in [
            "connect.finexer.com",
            "finexer.com",
            "a.b.finexer.com",
            "API.finexer.com",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
        for host in [
            "finexer.com.evil.example",
            "evilfinexer.com",
            ".finexer.com",
            "finexer.co",
            "com",
            "",
        ] {
            assert!(!hosts.allows(host), "{host}");
        }

        let local = ConsentHosts::derived_from(&Url::parse("http://127.0.0.1:3301").unwrap());
        assert!(local.allows("127.0.0.1"));
        assert!(!local.allows("127.0.0.2"));
        assert!(!local.allows("localhost"));

        // Not `api.`: the host alone.
        let other = ConsentHosts::derived_from(&Url::parse("https://finexer.example/v1/").unwrap());
        assert_eq!(other, ConsentHosts::parse("finexer.example").unwrap());
        assert!(!other.allows("connect.finexer.example"));
    }

    #[test]
    fn consent_times_are_read_once_and_an_odd_one_is_ignored() {
        let read = |times: serde_json::Value| {
            let mut consent = serde_json::json!({"id": "bc_1", "status": "authorized"});
            consent
                .as_object_mut()
                .unwrap()
                .extend(times.as_object().unwrap().clone());
            serde_json::from_value::<Consent>(consent).unwrap()
        };
        let consent = read(serde_json::json!({
            "authed_at": "2026-11-25T10:00:58Z",
            "expiry_date": "2027-02-23",
            "renewed_at": null,
        }));
        assert_eq!(
            consent.authed_at.map(|at| at.to_string()).as_deref(),
            Some("2026-11-25T10:00:58.000000Z")
        );
        assert_eq!(
            consent.expiry_date.map(|at| at.to_string()).as_deref(),
            Some("2027-02-23T00:00:00.000000Z"),
            "a bare date is midnight UTC"
        );
        assert_eq!(consent.renewed_at, None);
        // Text that is no time does not cost the consent its outcome.
        let odd = read(serde_json::json!({"authed_at": "yesterday", "expiry_date": "2027-02-30"}));
        assert_eq!((odd.authed_at, odd.expiry_date), (None, None));
        assert_eq!(odd.status, ConsentStatus::Authorized);
        // Not text at all is still an answer we cannot read.
        let wrong = serde_json::json!({"id": "bc_1", "status": "authorized", "authed_at": 5});
        assert!(serde_json::from_value::<Consent>(wrong).is_err());
    }

    #[test]
    fn consent_hosts_parse_refuses_what_is_not_a_host() {
        let parsed =
            ConsentHosts::parse(" Connect.Finexer.com ,*.finexer.com,[::1],127.0.0.1").unwrap();
        assert!(parsed.allows("connect.finexer.com"));
        assert!(parsed.allows("x.finexer.com"));
        assert!(!parsed.allows("finexer.com"));
        assert!(parsed.allows("[::1]"));
        for raw in [
            "",
            " ",
            "a.example,",
            "a.example,,b.example",
            "https://a.example",
            "a.example:443",
            "a.example/x",
            "u@a.example",
            "*.com",
            "*.*.a.example",
            "a.*.example",
            "*",
            "-a.example",
            "a..example",
            "[::1",
            "[zz]",
            "caf\u{e9}.example",
        ] {
            assert!(ConsentHosts::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn consent_page_url_refuses_unexpected_hosts_and_schemes() {
        let hosts = ConsentHosts::derived_from(&Url::parse("https://api.finexer.com").unwrap());
        for refused in [
            "http://connect.finexer.com/x?token=secret",
            "https://evil.example/x?token=secret",
            "https://u:p@connect.finexer.com/x?token=secret",
            "https://u@connect.finexer.com/x",
            "javascript:alert(1)",
            "data:text/html,hi",
            "http://127.0.0.1:3301/connect/bc_1",
        ] {
            let error = consent_page_url(refused, &hosts, Some("t"), None, None).unwrap_err();
            match error {
                Error::FinexerInvalid(detail) => {
                    assert!(detail.starts_with("consent_url refused: "), "{detail}");
                    assert!(!detail.contains("secret"), "{detail}");
                    assert!(!detail.contains("u:p"), "{detail}");
                }
                other => panic!("{refused}: {other:?}"),
            }
        }

        let page = consent_page_url(
            "https://connect.finexer.com/c/bc_1",
            &hosts,
            Some("dark"),
            Some(true),
            Some(false),
        )
        .unwrap();
        assert_eq!(
            page.as_str(),
            "https://connect.finexer.com/c/bc_1?template=dark&skip_info=true&skip_qr=false"
        );

        let local = ConsentHosts::derived_from(&Url::parse("http://127.0.0.1:3301").unwrap());
        let page = consent_page_url(
            "http://127.0.0.1:3301/connect/bc_1",
            &local,
            None,
            Some(true),
            None,
        )
        .unwrap();
        assert_eq!(
            page.as_str(),
            "http://127.0.0.1:3301/connect/bc_1?skip_info=true"
        );
        // Loopback by name or IPv6 too, when listed.
        let named = ConsentHosts::parse("localhost,[::1]").unwrap();
        for url in ["http://localhost:3301/c", "http://[::1]:3301/c"] {
            assert!(
                consent_page_url(url, &named, None, None, None).is_ok(),
                "{url}"
            );
        }
        // Plain http to a listed but non-loopback host is still refused.
        let listed = ConsentHosts::parse("connect.finexer.com").unwrap();
        assert!(
            consent_page_url("http://connect.finexer.com/c", &listed, None, None, None).is_err()
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_as_an_http_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_795_600_000);
        let in_a_minute = httpdate::fmt_http_date(now + Duration::from_secs(60));
        let an_hour_ago = httpdate::fmt_http_date(now - Duration::from_secs(3600));
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(&in_a_minute, now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after(&an_hour_ago, now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn jitter_stays_within_its_cap() {
        let cap = Duration::from_millis(400);
        let waits: Vec<Duration> = (0..200).map(|_| full_jitter(cap)).collect();
        assert!(waits.iter().all(|w| *w <= cap));
        assert!(
            waits.iter().any(|w| *w != waits[0]),
            "the waits are spread, not fixed"
        );
    }

    #[tokio::test]
    async fn no_call_or_retry_starts_past_the_request_budget() {
        // Out of time already: nothing is sent.
        let (late, scripted) = client(vec![(200, r#"{"id":"bc_1","status":"pending"}"#)]);
        let end = tokio::time::Instant::now() + Duration::from_millis(100);
        let error = crate::deadline::within(end, late.get_consent("bc_1"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::FinexerUnavailable { .. }),
            "{error:?}"
        );
        assert!(scripted.seen.lock().unwrap().is_empty(), "nothing sent");

        // Time for one attempt, not for a retry after a 503.
        let (once, scripted) = client(vec![
            (503, r#"{"error":{"code":"busy"}}"#),
            (200, r#"{"id":"bc_1","status":"pending"}"#),
        ]);
        let once = once.with_backoff(Duration::from_secs(60));
        let end =
            tokio::time::Instant::now() + crate::deadline::CLEANUP_RESERVE + Duration::from_secs(2);
        let error = crate::deadline::within(end, once.get_consent("bc_1"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::FinexerUnavailable { .. }),
            "{error:?}"
        );
        assert_eq!(scripted.seen.lock().unwrap().len(), 1, "no retry");
    }
}
