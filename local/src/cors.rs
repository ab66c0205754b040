//! CORS as the deployed HTTP API does it (infra/template.yaml
//! `CorsConfiguration`): the gateway answers preflights itself, before any
//! authorizer or function, and adds `access-control-allow-origin` to actual
//! responses for allowed origins only. The demo page is on another site, so
//! the browser enforces this exactly as it does in production.
//!
//! tests/infra/check_consistency.py reads the constants below and fails when
//! the template's `CorsConfiguration` says otherwise.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use url::Url;

/// `AllowMethods`.
pub const ALLOW_METHODS: &[&str] = &["GET", "POST"];
/// `AllowHeaders`.
pub const ALLOW_HEADERS: &[&str] = &["authorization", "content-type"];
/// `MaxAge`, seconds.
pub const MAX_AGE_SECONDS: u32 = 600;
/// `AllowCredentials`: no cookie crosses to the API; the frontend sends its
/// bearer token.
pub const ALLOW_CREDENTIALS: bool = false;

/// `AllowOrigins`: the origins of `FRONTEND_URLS`.
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Vec<String>,
    methods: HeaderValue,
    headers: HeaderValue,
}

impl Cors {
    pub fn for_frontends(frontend_urls: &[Url]) -> Cors {
        let mut origins: Vec<String> = frontend_urls
            .iter()
            .map(|url| url.origin().ascii_serialization())
            .collect();
        origins.sort();
        origins.dedup();
        let list = |items: &[&str]| HeaderValue::from_str(&items.join(",")).expect("ASCII");
        Cors {
            origins,
            methods: list(ALLOW_METHODS),
            headers: list(ALLOW_HEADERS),
        }
    }

    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// The request's origin, if it is one of ours.
    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.origins.iter().any(|o| o == text).then_some(origin)
    }
}

/// A preflight, as API Gateway recognises one: OPTIONS with `Origin` and
/// `Access-Control-Request-Method`.
fn is_preflight(request: &Request) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ORIGIN)
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn layer(State(cors): State<Arc<Cors>>, request: Request, next: Next) -> Response {
    let origin = cors.allowed(request.headers()).cloned();
    if is_preflight(&request) {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Some(origin) = origin {
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, cors.methods.clone());
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, cors.headers.clone());
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE_SECONDS.into());
            if ALLOW_CREDENTIALS {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
        return response;
    }
    let mut response = next.run(request).await;
    // API Gateway ignores CORS headers a function returns.
    let headers = response.headers_mut();
    let from_function: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in from_function {
        headers.remove(name);
    }
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if ALLOW_CREDENTIALS {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
    response
}
