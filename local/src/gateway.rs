//! Turns an HTTP request into the API Gateway HTTP API (v2) event Lambda
//! would receive, so the handlers parse exactly what they parse in AWS, and
//! their response back into HTTP.

use std::sync::Arc;

use axum::body::{Body as AxumBody, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use connect_testkit::Event;
use lambda_http::Body;
use serde_json::json;
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

    // One builder for every API Gateway event in the project (the test kit's):
    // route key and path parameters from the route table, the raw query,
    // cookies apart, a binary body base64.
    let mut builder = Event::new(parts.method.as_str(), parts.uri.path())
        .query(parts.uri.query().unwrap_or(""))
        .request_id(&format!("local-{}", rand::random::<u64>()))
        .body(&body);
    let mut joined: Vec<(&str, String)> = Vec::new();
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else { continue };
        if name == "cookie" {
            for cookie in value.split("; ") {
                builder = builder.cookie(cookie);
            }
            continue;
        }
        match joined.iter_mut().find(|(n, _)| *n == name.as_str()) {
            Some((_, before)) => *before = format!("{before},{value}"),
            None => joined.push((name.as_str(), value.to_owned())),
        }
    }
    for (name, value) in &joined {
        builder = builder.header(name, value);
    }
    if let Some(claims) = claims {
        builder = builder.claims(claims);
    }
    let mut event = builder.build();
    event.request_context.domain_name = Some("127.0.0.1".into());
    event.request_context.time_epoch = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    event.request_context.http.source_ip = Some("127.0.0.1".into());
    let event = connect_testkit::event::to_json(&event);
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
