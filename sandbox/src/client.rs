//! A typed client for the admin API under `/_sandbox/` (see `admin`), on the
//! sandbox's own types, so tests never write its JSON by hand.
//!
//! ```no_run
//! # async fn demo() -> Result<(), finexer_sandbox::client::AdminError> {
//! use finexer_sandbox::{FaultRule, client::Admin};
//! let sandbox = finexer_sandbox::start(Default::default()).await.unwrap();
//! let admin = Admin::new(sandbox.base_url());
//! admin.set_faults(&[FaultRule::failing(Some("POST"), "/consents", 503)]).await?;
//! let calls: Vec<String> = admin.requests().await?.iter().map(|r| r.call()).collect();
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use axum::http::StatusCode;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::admin::{ADMIN_PREFIX, FaultRules, ForcedStatus, Health, Log};
use crate::api::error::{ApiError, ErrorBody};
use crate::faults::{FaultRule, RuleReport};
use crate::model::{Consent, ConsentStatus};
use crate::mutations::Mutations;
use crate::request_log::{Concurrency, LoggedRequest};
use crate::webhooks::DeliveryAttempt;

/// Long enough for a redelivery, whose answer waits for the receiver (5 s at most).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an admin call did not give its typed answer.
#[derive(Debug)]
pub enum AdminError {
    /// No answer: nothing listening, a timeout, a body cut short.
    Unreachable(reqwest::Error),
    /// The sandbox refused, in Finexer's error shape (e.g. 400 `invalid_fault_rule`,
    /// 404 `resource_missing`, 409 `consent_not_authorized`).
    Refused(ApiError),
    /// An answer that is not what the admin API sends (not a sandbox there?).
    Unexpected { status: u16, body: String },
}

impl AdminError {
    /// The sandbox's error code when it refused, e.g. `"invalid_fault_rule"`.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused(error) => Some(&error.code),
            _ => None,
        }
    }

    /// The HTTP status when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused(error) => Some(error.status.as_u16()),
            Self::Unexpected { status, .. } => Some(*status),
            Self::Unreachable(_) => None,
        }
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "the sandbox did not answer: {why}"),
            Self::Refused(error) => write!(
                f,
                "the sandbox refused ({} {}): {}",
                error.status.as_u16(),
                error.code,
                error.message
            ),
            Self::Unexpected { status, body } => {
                let start: String = body.chars().take(200).collect();
                write!(f, "unexpected sandbox answer ({status}): {start}")
            }
        }
    }
}

impl std::error::Error for AdminError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unreachable(why) => Some(why),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for AdminError {
    fn from(why: reqwest::Error) -> Self {
        Self::Unreachable(why)
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// The admin API of one sandbox, in process or not.
#[derive(Clone, Debug)]
pub struct Admin {
    http: reqwest::Client,
    base_url: String,
}

impl Admin {
    /// `base_url` as `RunningSandbox::base_url` gives it (`http://127.0.0.1:PORT`).
    pub fn new(base_url: impl Into<String>) -> Self {
        let http = http_client(ADMIN_TIMEOUT)
            // Only fails without a TLS backend, which `http_client` installs.
            .expect("the admin client builds");
        Self::with_client(http, base_url)
    }

    /// With a client of the caller's (timeouts, proxies).
    pub fn with_client(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Ok once the sandbox answers its health check.
    pub async fn health(&self) -> AdminResult<Health> {
        self.call(Method::GET, "/health", None::<&()>).await
    }

    /// The active fault rules with their counters.
    pub async fn faults(&self) -> AdminResult<Vec<RuleReport>> {
        let report: FaultRules<RuleReport> = self.call(Method::GET, "/faults", None::<&()>).await?;
        Ok(report.rules)
    }

    /// Replaces every rule (and its counters); a rule the sandbox finds
    /// invalid is `Refused` with code `invalid_fault_rule` and nothing changes.
    pub async fn set_faults(&self, rules: &[FaultRule]) -> AdminResult<Vec<RuleReport>> {
        let body = FaultRules {
            rules: rules.to_vec(),
        };
        let report: FaultRules<RuleReport> =
            self.call(Method::POST, "/faults", Some(&body)).await?;
        Ok(report.rules)
    }

    pub async fn clear_faults(&self) -> AdminResult<()> {
        self.call_empty(Method::DELETE, "/faults").await
    }

    /// The API requests received, oldest first (pages and admin calls are not logged).
    pub async fn requests(&self) -> AdminResult<Vec<LoggedRequest>> {
        let log: Log<LoggedRequest> = self.call(Method::GET, "/requests", None::<&()>).await?;
        Ok(log.data)
    }

    /// `"METHOD /path"` of each API request received, oldest first.
    pub async fn calls(&self) -> AdminResult<Vec<String>> {
        Ok(self
            .requests()
            .await?
            .iter()
            .map(LoggedRequest::call)
            .collect())
    }

    /// API requests in flight now, and the most at once since the request
    /// log was last cleared.
    pub async fn concurrency(&self) -> AdminResult<Concurrency> {
        self.call(Method::GET, "/requests/concurrency", None::<&()>)
            .await
    }

    /// Empties the request log and restarts the concurrency peak.
    pub async fn clear_requests(&self) -> AdminResult<()> {
        self.call_empty(Method::DELETE, "/requests").await
    }

    /// Every consent the sandbox holds in `status`, in creation order,
    /// without touching the request log.
    pub async fn consents_in(&self, status: ConsentStatus) -> AdminResult<Vec<Consent>> {
        let path = format!("/consents?status={status}");
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// A consent as the sandbox holds it, without touching the request log.
    pub async fn consent(&self, id: &str) -> AdminResult<Consent> {
        let path = format!("/consents/{}", segment(id));
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Moves a consent to `status` (authorized as on the consent page).
    pub async fn set_status(&self, id: &str, status: ConsentStatus) -> AdminResult<Consent> {
        self.force_status(id, &ForcedStatus::new(status)).await
    }

    /// Authorizes a consent as if the account holder chose `provider` on the page.
    pub async fn authorize_with(&self, id: &str, provider: &str) -> AdminResult<Consent> {
        let forced = ForcedStatus {
            provider: Some(provider.to_owned()),
            ..ForcedStatus::new(ConsentStatus::Authorized)
        };
        self.force_status(id, &forced).await
    }

    /// The full form of `set_status`: a failure code and message, a bank.
    pub async fn force_status(&self, id: &str, forced: &ForcedStatus) -> AdminResult<Consent> {
        let path = format!("/consents/{}/status", segment(id));
        self.call(Method::POST, &path, Some(forced)).await
    }

    /// What the account holder's bank does on "revoke" (409 unless authorized).
    pub async fn cancel_at_bank(&self, id: &str) -> AdminResult<Consent> {
        let path = format!("/consents/{}/cancel", segment(id));
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// Sends `reminder.consent_expiry.sent` now; answers its first attempt.
    pub async fn remind_of_expiry(&self, id: &str) -> AdminResult<DeliveryAttempt> {
        let path = format!("/consents/{}/remind", segment(id));
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// Every webhook delivery attempt, oldest first.
    pub async fn webhooks(&self) -> AdminResult<Vec<DeliveryAttempt>> {
        let log: Log<DeliveryAttempt> = self.call(Method::GET, "/webhooks", None::<&()>).await?;
        Ok(log.data)
    }

    pub async fn clear_webhooks(&self) -> AdminResult<()> {
        self.call_empty(Method::DELETE, "/webhooks").await
    }

    /// Sends a sent event again; answers its first attempt.
    pub async fn redeliver(&self, event_id: &str) -> AdminResult<DeliveryAttempt> {
        let path = format!("/webhooks/{}/redeliver", segment(event_id));
        self.call(Method::POST, &path, None::<&()>).await
    }

    pub async fn mutations(&self) -> AdminResult<Mutations> {
        self.call(Method::GET, "/mutations", None::<&()>).await
    }

    /// Replaces the mutations: answers that differ from Finexer's on purpose.
    pub async fn set_mutations(&self, mutations: &Mutations) -> AdminResult<Mutations> {
        self.call(Method::POST, "/mutations", Some(mutations)).await
    }

    pub async fn clear_mutations(&self) -> AdminResult<()> {
        self.call_empty(Method::DELETE, "/mutations").await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> AdminResult<(StatusCode, String)> {
        let url = format!("{}{ADMIN_PREFIX}{path}", self.base_url);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = StatusCode::from_u16(response.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.parse().ok());
        let text = response.text().await?;
        if status.is_success() {
            return Ok((status, text));
        }
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(error) => AdminError::Refused(
                ApiError::from_wire(status, error).with_retry_after(retry_after),
            ),
            Err(_) => AdminError::Unexpected {
                status: status.as_u16(),
                body: text,
            },
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> AdminResult<T> {
        let (status, text) = self.send(method, path, body).await?;
        serde_json::from_str(&text).map_err(|_| AdminError::Unexpected {
            status: status.as_u16(),
            body: text,
        })
    }

    async fn call_empty(&self, method: Method, path: &str) -> AdminResult<()> {
        let (status, text) = self.send(method, path, None::<&()>).await?;
        if status == StatusCode::NO_CONTENT {
            Ok(())
        } else {
            Err(AdminError::Unexpected {
                status: status.as_u16(),
                body: text,
            })
        }
    }
}

/// An id as one path segment (ids are plain, but a test may pass anything).
fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A loopback client: no proxy, and the TLS provider the workspace's reqwest
/// lacks installed first (building a client fails without one, even for http).
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    // An error only means a default is installed already, which serves as well.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
}
