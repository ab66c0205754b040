//! Finexer's error shape, the single place where failures become responses:
//! `{"error": {"type": "...", "code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The `type` member of an error; Finexer groups codes under these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorType {
    #[serde(rename = "request_error")]
    Request,
    #[serde(rename = "authentication_error")]
    Authentication,
    #[serde(rename = "api_error")]
    Api,
}

/// An error as it travels: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub error_type: ErrorType,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_type: ErrorType,
    pub code: String,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 and 503 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let error_type = match status {
            StatusCode::UNAUTHORIZED => ErrorType::Authentication,
            s if s.is_server_error() => ErrorType::Api,
            _ => ErrorType::Request,
        };
        Self {
            status,
            error_type,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 for anything the client sent wrongly.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::bad_request(
            "parameter_missing",
            format!("Missing required parameter: {name}."),
        )
    }

    pub fn invalid_parameter(name: &str, why: &str) -> Self {
        Self::bad_request(
            "parameter_invalid",
            format!("Invalid parameter {name}: {why}."),
        )
    }

    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn not_found(object: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "resource_missing",
            format!("No such {object}: '{id}'."),
        )
    }

    /// An error injected by a fault rule; the code says so to keep test logs readable.
    pub fn injected(status: StatusCode, retry_after: Option<u64>) -> Self {
        let reason = status.canonical_reason().unwrap_or("error");
        Self::new(
            status,
            "sandbox_fault",
            format!("Injected fault: {reason}."),
        )
        .with_retry_after(retry_after)
    }

    pub fn with_retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after = seconds;
        self
    }

    /// The error a client read off the wire (add its `Retry-After` with `with_retry_after`).
    pub fn from_wire(status: StatusCode, body: ErrorBody) -> Self {
        let ErrorDetail {
            error_type,
            code,
            message,
        } = body.error;
        Self {
            status,
            error_type,
            code,
            message,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                error_type: self.error_type,
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Finexer\""),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
