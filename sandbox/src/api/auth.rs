//! HTTP Basic auth as Finexer uses it: the API key is the user name, the password is empty.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::ApiError;
use crate::state::SandboxState;

const HOW_TO_AUTHENTICATE: &str =
    "Use HTTP Basic auth with your API key as the user name and an empty password.";

pub async fn require_api_key(
    State(state): State<SandboxState>,
    request: Request,
    next: Next,
) -> Response {
    match check_api_key(request.headers(), &state.api_key) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

fn check_api_key(headers: &HeaderMap, api_key: &str) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing_api_key",
            format!("No API key provided. {HOW_TO_AUTHENTICATE}"),
        ));
    };
    let malformed = || {
        ApiError::unauthorized(
            "invalid_authorization",
            format!("The Authorization header is not valid Basic auth. {HOW_TO_AUTHENTICATE}"),
        )
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let credentials = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (user, password) = credentials.split_once(':').ok_or_else(malformed)?;
    // A sandbox key is not a secret worth a constant-time comparison.
    if user != api_key {
        return Err(ApiError::unauthorized(
            "invalid_api_key",
            "Invalid API key provided.",
        ));
    }
    if !password.is_empty() {
        return Err(ApiError::unauthorized(
            "invalid_api_key",
            format!("The password must be empty. {HOW_TO_AUTHENTICATE}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn basic(credentials: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(credentials));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        headers
    }

    #[test]
    fn key_as_user_with_empty_password_passes() {
        assert!(check_api_key(&basic("sk_1:"), "sk_1").is_ok());
        assert_eq!(
            check_api_key(&basic("sk_2:"), "sk_1").unwrap_err().code,
            "invalid_api_key"
        );
        assert_eq!(
            check_api_key(&basic("sk_1:x"), "sk_1").unwrap_err().code,
            "invalid_api_key"
        );
        assert_eq!(
            check_api_key(&basic("sk_1"), "sk_1").unwrap_err().code,
            "invalid_authorization"
        );
        assert_eq!(
            check_api_key(&HeaderMap::new(), "sk_1").unwrap_err().code,
            "missing_api_key"
        );
    }
}
