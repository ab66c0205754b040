//! Turns an HTTP request into the API Gateway HTTP API (v2) event Lambda
//! would receive, so the handlers parse exactly what they parse in AWS, and
//! their response back into HTTP.

use std::sync::Arc;

use axum::body::{Body as AxumBody, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::Body;
use serde_json::{Value, json};
use shared::routes::Route;

use crate::LocalState;

/// API Gateway's own payload limit.
const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// One reconciler run with the stack's invocation time limit.
pub async fn reconcile_once(
    state: &LocalState,
    run: shared::handlers::reconcile::Run,
) -> shared::Result<shared::handlers::reconcile::Report> {
    let end = tokio::time::Instant::now() + state.invocation_timeout;
    let run = shared::handlers::reconcile(&state.app, run);
    let observed = state
        .app
        .metrics
        .scope(shared::metrics::Function::Reconcile, Box::pin(run));
    shared::deadline::within(end, observed).await
}

/// `POST /local/reconcile`: runs the reconciler now and answers its report.
/// The body may set `at` (act as at that RFC 3339 time) and `budget_ms`.
pub async fn reconcile_now(
    State(state): State<Arc<LocalState>>,
    body: axum::body::Bytes,
) -> Response {
    let run = if body.is_empty() {
        Default::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(run) => run,
            Err(_) => {
                return problem(
                    400,
                    "bad-request",
                    "Bad request",
                    "The body must be {\"at\": RFC 3339 time, \"budget_ms\": number}, both optional.",
                );
            }
        }
    };
    match reconcile_once(&state, run).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => to_axum(e.into_problem_response()),
    }
}

/// A problem in the same format as the functions' own (`/problems/<slug>`).
pub fn problem(status: u16, slug: &str, title: &str, detail: &str) -> Response {
    let body = json!({"type": format!("/problems/{slug}"), "title": title, "status": status, "detail": detail});
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        [("content-type", "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

pub async fn not_found() -> Response {
    problem(404, "not-found", "Not found", "No such route.")
}

/// Serves `route` as API Gateway and Lambda do: the authorizer if the
/// route has one, the event with the route's key and path parameters, the
/// function's handler within its time limit.
pub async fn invoke(
    State(state): State<Arc<LocalState>>,
    route: &'static Route,
    request: Request,
) -> Response {
    let claims = if route.is_authorized() {
        match state.authorizer.claims(request.headers()) {
            Some(claims) => Some(claims),
            None => {
                let mut response = problem(
                    401,
                    "unauthorized",
                    "Unauthorized",
                    "A valid bearer token is required.",
                );
                response
                    .headers_mut()
                    .insert("www-authenticate", "Bearer".parse().expect("static header"));
                return response;
            }
        }
    } else {
        None
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_PAYLOAD_BYTES).await else {
        return problem(
            413,
            "payload-too-large",
            "Payload too large",
            "The request body is too large.",
        );
    };

    let mut headers = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else { continue };
        if name == "cookie" {
            cookies.extend(value.split("; ").map(str::to_owned));
            continue;
        }
        let joined = match headers.get(name.as_str()) {
            Some(Value::String(before)) => format!("{before},{value}"),
            _ => value.to_owned(),
        };
        headers.insert(name.as_str().to_owned(), Value::String(joined));
    }
    let (body, encoded) = match std::str::from_utf8(&body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (Value::String(STANDARD.encode(&body)), true),
    };
    let path = parts.uri.path();
    // Matched by the router from this same table: the parameters are there.
    let parameters = match Route::find(route.method(), path) {
        Some((_, parameters)) if !parameters.is_empty() => Value::Object(
            parameters
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.into()))
                .collect(),
        ),
        _ => Value::Null,
    };
    let route_key = route.key;
    let mut context = json!({
        "accountId": "000000000000", "apiId": "local", "domainName": "127.0.0.1",
        "domainPrefix": "local", "requestId": format!("local-{}", rand::random::<u64>()),
        "routeKey": route_key, "stage": "$default",
        "time": "", "timeEpoch": time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
        "http": {"method": parts.method.as_str(), "path": path, "protocol": "HTTP/1.1",
                 "sourceIp": "127.0.0.1", "userAgent": headers.get("user-agent").cloned().unwrap_or(Value::Null)}
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let event = json!({
        "version": "2.0", "routeKey": route_key, "rawPath": path,
        "rawQueryString": parts.uri.query().unwrap_or(""), "pathParameters": parameters,
        "cookies": if cookies.is_empty() { Value::Null } else { json!(cookies) },
        "headers": headers, "requestContext": context,
        "body": body, "isBase64Encoded": encoded,
    });
    let lambda_request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(_) => {
            return problem(
                400,
                "bad-request",
                "Bad request",
                "The request could not be read.",
            );
        }
    };

    let app = &state.app;
    let function = route.function;
    let handled = shared::lambda::observed(app, function, lambda_request, |request| {
        shared::handlers::dispatch(function, app, request)
    });
    // As on Lambda: the function's timeout bounds each invocation.
    let end = tokio::time::Instant::now() + state.invocation_timeout;
    to_axum(shared::deadline::within(end, handled).await)
}

fn to_axum(response: lambda_http::Response<Body>) -> Response {
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Empty => AxumBody::empty(),
        Body::Text(text) => AxumBody::from(text),
        Body::Binary(bytes) => AxumBody::from(bytes),
        _ => AxumBody::empty(),
    };
    Response::from_parts(parts, body)
}
