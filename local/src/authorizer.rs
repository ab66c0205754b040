//! Stands in for the HTTP API's JWT authorizer: validates `Authorization:
//! Bearer` tokens (HS256, issuer `local`, audience `connect`) and hands their
//! claims to the function where API Gateway puts them. Also mints such tokens
//! for the demo's sign-in.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::LocalState;

pub const ISSUER: &str = "local";
pub const AUDIENCE: &str = "connect";

pub struct LocalAuthorizer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl LocalAuthorizer {
    pub fn new(secret: &str) -> Self {
        LocalAuthorizer {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    pub fn mint(&self, user: &str, name: Option<&str>, email: Option<&str>) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({
            "sub": user, "iss": ISSUER, "aud": AUDIENCE,
            "iat": now, "exp": now + crate::TOKEN_LIFETIME.as_secs() as i64,
        });
        if let Some(name) = name {
            claims["name"] = name.into();
        }
        if let Some(email) = email {
            claims["email"] = email.into();
        }
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// The claims API Gateway would pass on (values as strings), or None when
    /// the gateway would answer 401 itself.
    pub fn claims(&self, headers: &HeaderMap) -> Option<HashMap<String, String>> {
        let value = headers.get("authorization")?.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        let data =
            jsonwebtoken::decode::<HashMap<String, Value>>(token, &self.decoding, &validation)
                .ok()?;
        Some(
            data.claims
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect(),
        )
    }
}

#[derive(Deserialize)]
pub struct SignIn {
    user: String,
    name: Option<String>,
    email: Option<String>,
}

/// `POST /local/token`: the demo's sign-in. Local only.
pub async fn mint(State(state): State<Arc<LocalState>>, body: Option<Json<SignIn>>) -> Response {
    let Some(Json(sign_in)) = body else {
        return crate::gateway::problem(
            400,
            "bad-request",
            "Bad request",
            "send {\"user\": \"name\"} as JSON",
        );
    };
    let user = sign_in.user.trim();
    let valid = !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if !valid {
        return crate::gateway::problem(
            400,
            "bad-request",
            "Bad request",
            "user must be 1 to 64 letters, digits or - _ . @",
        );
    }
    // Finexer needs an email for the user's customer; the demo makes one up.
    let email = sign_in
        .email
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| format!("{user}@example.com"));
    let token = state
        .authorizer
        .mint(user, sign_in.name.as_deref(), Some(&email));
    Json(json!({"token": token, "user": user})).into_response()
}
