//! Typed client for the Finexer API. Every Finexer-specific detail (paths,
//! field names, encodings, status names) lives in this module, so a correction
//! to `finexer-api.md` touches one place.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::secrets::SecretSource;

/// A consent's status as Finexer names it. Unknown values are kept, never an
/// error that loses the record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ConsentStatus {
    New,
    Pending,
    Authorized,
    Failed,
    Expired,
    Canceled,
    /// Ours, not Finexer's: a revocation was asked for and is not yet confirmed.
    RevokePending,
    Other(String),
}

impl ConsentStatus {
    pub fn as_str(&self) -> &str {
        match self {
            ConsentStatus::New => "new",
            ConsentStatus::Pending => "pending",
            ConsentStatus::Authorized => "authorized",
            ConsentStatus::Failed => "failed",
            ConsentStatus::Expired => "expired",
            ConsentStatus::Canceled => "canceled",
            ConsentStatus::RevokePending => "revoke_pending",
            ConsentStatus::Other(s) => s,
        }
    }

    /// The user finished at the consent page, one way or the other.
    pub fn is_outcome(&self) -> bool {
        matches!(
            self,
            ConsentStatus::Authorized
                | ConsentStatus::Canceled
                | ConsentStatus::Failed
                | ConsentStatus::Expired
        )
    }
}

impl From<String> for ConsentStatus {
    fn from(value: String) -> Self {
        match value.as_str() {
            "new" => ConsentStatus::New,
            "pending" => ConsentStatus::Pending,
            "authorized" => ConsentStatus::Authorized,
            "failed" => ConsentStatus::Failed,
            "expired" => ConsentStatus::Expired,
            // Finexer spells it the American way; accept the British one too.
            "canceled" | "cancelled" => ConsentStatus::Canceled,
            "revoke_pending" => ConsentStatus::RevokePending,
            _ => ConsentStatus::Other(value),
        }
    }
}

impl From<ConsentStatus> for String {
    fn from(value: ConsentStatus) -> Self {
        value.as_str().to_owned()
    }
}

impl std::fmt::Display for ConsentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    #[serde(default)]
    pub authed_at: Option<String>,
    #[serde(default)]
    pub expiry_date: Option<String>,
    #[serde(default)]
    pub redirect: Option<Redirect>,
}

/// A bank account, passed through to our callers as Finexer shapes it.
pub type BankAccount = serde_json::Value;

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
/// Longest `Retry-After` we wait for inside one request; longer ones are passed
/// on to our caller.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);

/// How a built request reaches Finexer. Production sends it with reqwest;
/// the overhead benchmark answers in-process, so that its figure is our own
/// CPU time (request building, auth, JSON) without the network stack's.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, request: reqwest::Request) -> reqwest::Result<reqwest::Response>;
}

#[async_trait::async_trait]
impl Transport for reqwest::Client {
    async fn send(&self, request: reqwest::Request) -> reqwest::Result<reqwest::Response> {
        self.execute(request).await
    }
}

#[derive(Clone)]
pub struct FinexerClient {
    /// Builds requests (and sends them, unless `transport` is replaced).
    http: reqwest::Client,
    transport: Arc<dyn Transport>,
    base: Url,
    secrets: Arc<dyn SecretSource>,
    backoff: Duration,
}

impl FinexerClient {
    pub fn new(base: Url, timeout: Duration, secrets: Arc<dyn SecretSource>) -> Result<Self> {
        let http = crate::net::http_client_builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .user_agent(concat!("finexer-connect/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
        Ok(Self {
            transport: Arc::new(http.clone()),
            http,
            base,
            secrets,
            backoff: Duration::from_millis(100),
        })
    }

    /// Sends through `transport` instead of the network (benchmarks).
    pub fn with_transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self
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
        self.call(Method::GET, &path, &[], None, Retry::Safe).await
    }

    /// Revoking is idempotent at Finexer (a revoked consent reads `canceled`).
    pub async fn revoke_consent(&self, id: &str) -> Result<Consent> {
        let path = format!("/consents/{}/revoke", encode_segment(id));
        self.call(Method::POST, &path, &[], Some(&[]), Retry::Safe)
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
            .call(Method::GET, "/bank_accounts", &query, None, Retry::Safe)
            .await?;
        Ok(list.data)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        form: Option<&[(&str, String)]>,
        retry: Retry,
    ) -> Result<T> {
        let secrets = self.secrets.secrets().await?;
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
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .basic_auth(secrets.finexer_api_key.expose_secret(), Some(""));
            if let Some(form) = form {
                request = request.form(form);
            }
            let sent = match request.build() {
                Ok(request) => self.transport.send(request).await,
                Err(e) => Err(e),
            };
            let failure = match sent {
                Ok(response) if response.status().is_success() => {
                    return response.json::<T>().await.map_err(|e| {
                        unavailable(format!("{method} {path}: unreadable answer: {e}"), None)
                    });
                }
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(&response);
                    let body = response.text().await.unwrap_or_default();
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
                .unwrap_or(self.backoff * 2u32.pow(attempt - 1));
            if !retryable || attempt >= MAX_ATTEMPTS || wait > MAX_INLINE_WAIT {
                return Err(failure.into_error(&method, path));
            }
            tracing::warn!(%method, path, attempt, "Finexer call failed; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

enum Failure {
    Status(StatusCode, Option<Duration>, String),
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
                let parsed = serde_json::from_str::<ErrorEnvelope>(&body).ok();
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

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(3600)))
}

/// Ids are opaque: escape them rather than trusting their alphabet.
fn encode_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// `consent_url` with the consent page options Finexer reads from its query.
pub fn consent_page_url(
    consent_url: &str,
    template: Option<&str>,
    skip_info: Option<bool>,
    skip_qr: Option<bool>,
) -> Result<Url> {
    let mut url = Url::parse(consent_url)
        .map_err(|_| unavailable("Finexer returned an invalid consent_url".into(), None))?;
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
        answers: Mutex<Vec<(u16, &'static str)>>,
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
            let (status, body) = self.answers.lock().unwrap().remove(0);
            let response = http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(body)
                .unwrap();
            Ok(reqwest::Response::from(response))
        }
    }

    fn client(answers: Vec<(u16, &'static str)>) -> (FinexerClient, Arc<Scripted>) {
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
}
