//! The crate's one error type, and the single place where errors become
//! HTTP responses (JSON problems for the API, HTML pages for the browser).

use std::time::Duration;

use lambda_http::{Body, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something we cannot accept.
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    /// Unknown, or not the caller's: the two are deliberately the same answer.
    #[error("no such consent")]
    NotFound,
    /// The event did not come by a route of this function (no route key of
    /// ours, or no path parameter the route has): a misconfigured route.
    #[error("{0}")]
    NoRoute(String),
    /// The consent is in a status that does not allow the request.
    #[error("{0}")]
    Conflict(String),
    /// The state token (or its binding) does not check out. The reason is for
    /// logs only; the browser sees one generic page.
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
    /// Finexer answered with a 4xx that describes the request (bad provider, ...).
    #[error("Finexer rejected the request ({status} {code}): {message}")]
    FinexerRejected {
        status: u16,
        code: String,
        message: String,
    },
    /// Finexer failed, timed out, throttled us or could not be reached.
    #[error("Finexer is unavailable: {detail}")]
    FinexerUnavailable {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// Finexer answered something we must not use (a consent page on a host
    /// or scheme we do not trust); the consent is revoked.
    #[error("Finexer's answer was refused: {0}")]
    FinexerInvalid(String),
    /// The caller already has the most pending links allowed
    /// (`MAX_PENDING_LINKS`); a place frees when the first of them lapses.
    #[error(
        "You already have {max} bank connections waiting to be finished; finish or cancel one, or try again once the oldest link has expired."
    )]
    TooManyPendingLinks { max: usize, retry_after: Duration },
    /// Another request is doing the same work right now (e.g. creating the
    /// user's Finexer customer); the caller should retry shortly.
    #[error("{0}")]
    Busy(String),
    /// The request ran out of its time budget before it could answer.
    #[error("the request ran out of time")]
    OutOfTime,
    #[error("the consent store is unavailable: {0}")]
    StoreUnavailable(String),
    /// Secrets Manager could not be reached, timed out or throttled us.
    #[error("secrets are unavailable: {0}")]
    SecretsUnavailable(String),
    /// The secret was read but its content is wrong (not JSON, a key
    /// missing or too short): a deployment fault, not an outage.
    #[error("the secret's content is wrong: {0}")]
    SecretInvalid(String),
    #[error("configuration error: {0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Error codes AWS services use when they are shedding load, or for a
/// conflict that a retry resolves (a transaction cancelled by a concurrent
/// one): retry later.
const AWS_RETRYABLE: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "LimitExceededException",
    "TransactionConflictException",
    "TransactionInProgressException",
    "TransactionCanceledException",
    "ExpiredTokenException",
];

/// Error codes that say the deployment is wrong (no such table or secret, a
/// role without the permission, credentials the service does not know).
/// Retrying cannot help, so the caller is not told to: these are 500s, and
/// the 5xx alarm pages someone, as it should for a broken deploy.
const AWS_MISCONFIGURED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "ResourceNotFoundException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "DecryptionFailure",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSNotFoundException",
    "InvalidRequestException",
];

/// An AWS SDK call's failure as the caller sees it. The service unreachable,
/// timing out, throttling us, answering 5xx or something unreadable is an
/// outage: `unavailable` (a 503 with `Retry-After`). A deployment fault
/// ([`AWS_MISCONFIGURED`]) is [`Error::Config`]; a request the service
/// refuses as malformed, or one the SDK could not build, is our bug.
pub fn from_aws<E>(
    operation: &str,
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
    unavailable: fn(String) -> Error,
) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    let detail = format!(
        "{operation} failed: {}",
        aws_smithy_types::error::display::DisplayErrorContext(err)
    );
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            unavailable(detail)
        }
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or_default();
            if AWS_RETRYABLE.contains(&code) || context.raw().status().is_server_error() {
                unavailable(detail)
            } else if AWS_MISCONFIGURED.contains(&code) {
                Error::Config(detail)
            } else {
                Error::Internal(detail)
            }
        }
        _ => Error::Internal(detail),
    }
}

/// RFC 9457 problem details, the one JSON error format of the API.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Error {
    /// Status code, problem slug and title for this error.
    fn classify(&self) -> (u16, &'static str, &'static str) {
        match self {
            Error::BadRequest(_) => (400, "bad-request", "Bad request"),
            Error::PayloadTooLarge { .. } => (413, "payload-too-large", "Payload too large"),
            Error::Unauthorized => (401, "unauthorized", "Unauthorized"),
            Error::Forbidden(_) => (403, "forbidden", "Forbidden"),
            Error::NotFound | Error::NoRoute(_) => (404, "not-found", "Not found"),
            Error::Conflict(_) => (409, "conflict", "Conflict"),
            Error::InvalidState(_) => (400, "invalid-state", "Invalid or expired link"),
            Error::FinexerRejected { status, .. } => match status {
                // Our own API key or permissions are wrong: not the caller's fault.
                401 | 403 => (502, "upstream-error", "Bank connection provider error"),
                _ => (
                    400,
                    "rejected-by-provider",
                    "Rejected by the bank connection provider",
                ),
            },
            Error::FinexerUnavailable { .. } => (
                503,
                "upstream-unavailable",
                "Bank connection provider unavailable",
            ),
            Error::FinexerInvalid(_) => (502, "upstream-error", "Bank connection provider error"),
            Error::TooManyPendingLinks { .. } => {
                (429, "too-many-pending-links", "Too many pending links")
            }
            Error::Busy(_) => (503, "busy", "Try again shortly"),
            Error::StoreUnavailable(_) => (503, "store-unavailable", "Service unavailable"),
            Error::OutOfTime => (503, "timeout", "Service unavailable"),
            Error::SecretsUnavailable(_) => (503, "secrets-unavailable", "Service unavailable"),
            Error::SecretInvalid(_) | Error::Config(_) | Error::Internal(_) => {
                (500, "internal", "Internal error")
            }
        }
    }

    pub fn status(&self) -> u16 {
        self.classify().0
    }

    /// Seconds the caller should wait before retrying, where that helps.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::FinexerUnavailable { retry_after, .. } => {
                Some(retry_after.map_or(2, |d| d.as_secs().max(1)))
            }
            Error::TooManyPendingLinks { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            Error::Busy(_)
            | Error::StoreUnavailable(_)
            | Error::SecretsUnavailable(_)
            | Error::OutOfTime => Some(1),
            _ => None,
        }
    }

    /// What the caller may be told. Server-side failures get a fixed text so
    /// that nothing internal (table names, upstream bodies) leaks out.
    pub fn public_detail(&self) -> String {
        match self {
            Error::BadRequest(_)
            | Error::PayloadTooLarge { .. }
            | Error::Forbidden(_)
            | Error::NotFound
            | Error::NoRoute(_)
            | Error::Conflict(_)
            | Error::TooManyPendingLinks { .. }
            | Error::Busy(_) => self.to_string(),
            Error::Unauthorized => "A valid bearer token is required.".into(),
            Error::InvalidState(_) => {
                "This connection link is invalid, expired or was already used.".into()
            }
            Error::FinexerRejected {
                status: 401 | 403, ..
            } => "The bank connection provider refused our credentials.".into(),
            Error::FinexerRejected { message, .. } => {
                format!("The bank connection provider rejected the request: {message}")
            }
            Error::FinexerUnavailable { .. } => {
                "The bank connection provider did not answer in time; try again shortly.".into()
            }
            Error::FinexerInvalid(_) => {
                "The bank connection provider answered something we cannot use.".into()
            }
            Error::StoreUnavailable(_) => "Storage is unavailable; try again shortly.".into(),
            Error::SecretsUnavailable(_) => {
                "A service we depend on is unavailable; try again shortly.".into()
            }
            Error::OutOfTime => "The request took too long; try again shortly.".into(),
            Error::SecretInvalid(_) | Error::Config(_) | Error::Internal(_) => {
                "An internal error occurred.".into()
            }
        }
    }

    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.classify();
        Problem {
            kind: format!("/problems/{slug}"),
            title: title.into(),
            status,
            detail: self.public_detail(),
        }
    }

    fn log(&self) {
        let status = self.status();
        if status >= 500 {
            tracing::error!(status, error = %self, "request failed");
        } else {
            tracing::info!(status, error = %self, "request refused");
        }
    }

    /// The API's answer for this error: `application/problem+json`.
    pub fn into_problem_response(self) -> Response<Body> {
        self.log();
        let problem = self.problem();
        let body = serde_json::to_string(&problem).unwrap_or_default();
        let mut builder = Response::builder()
            .status(problem.status)
            .header("content-type", "application/problem+json")
            .header("cache-control", "no-store");
        if let Some(seconds) = self.retry_after() {
            builder = builder.header("retry-after", seconds.to_string());
        }
        if matches!(self, Error::Unauthorized) {
            builder = builder.header("www-authenticate", "Bearer");
        }
        builder
            .body(Body::Text(body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }

    /// The browser's answer for this error: a small HTML page, never a redirect.
    pub fn into_html_response(self, home: &url::Url) -> Response<Body> {
        self.log();
        let (status, _, title) = self.classify();
        let page = crate::http::error_page(title, &self.public_detail(), home);
        let mut response =
            crate::http::html_page(status, &page).unwrap_or_else(|_| Response::new(Body::Empty));
        if let Some(value) = self
            .retry_after()
            .and_then(|seconds| seconds.to_string().parse().ok())
        {
            response.headers_mut().insert("retry-after", value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service(status: u16, code: &str) -> SdkError<GetSecretValueError, HttpResponse> {
        let err = GetSecretValueError::generic(ErrorMetadata::builder().code(code).build());
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    fn status(err: &SdkError<GetSecretValueError, HttpResponse>) -> (u16, Option<u64>) {
        let err = from_aws("GetSecretValue", err, Error::SecretsUnavailable);
        (err.status(), err.retry_after())
    }

    #[test]
    fn aws_outages_are_503_and_deployment_faults_500() {
        let refused = SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        let slow = SdkError::timeout_error("attempt timeout");
        for outage in [
            refused,
            slow,
            service(400, "ThrottlingException"),
            service(400, "ProvisionedThroughputExceededException"),
            service(500, "InternalServiceError"),
            service(503, "ServiceUnavailable"),
        ] {
            assert_eq!(status(&outage), (503, Some(1)), "{outage:?}");
        }
        for fault in [
            service(400, "AccessDeniedException"),
            service(400, "ResourceNotFoundException"),
            service(400, "ValidationException"),
            SdkError::construction_failure("no region"),
        ] {
            assert_eq!(status(&fault), (500, None), "{fault:?}");
        }
        let missing = from_aws(
            "GetSecretValue",
            &service(400, "ResourceNotFoundException"),
            Error::SecretsUnavailable,
        );
        assert!(matches!(missing, Error::Config(_)), "{missing:?}");
    }

    #[test]
    fn the_browser_gets_a_try_again_page_with_retry_after() {
        let home = url::Url::parse("https://app.example.com/").unwrap();
        let response = Error::SecretsUnavailable("away".into()).into_html_response(&home);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let response = Error::SecretInvalid("bad".into()).into_html_response(&home);
        assert_eq!(response.status(), 500);
        assert!(response.headers().get("retry-after").is_none());
    }
}
