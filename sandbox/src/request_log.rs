//! A record of the Finexer API requests received, so tests can count round trips
//! and see exactly what a client sent. Pages and admin calls are not recorded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::clock::Timestamp;
use crate::state::SandboxState;

/// Oldest entries are dropped beyond this, so long benchmarks cannot exhaust
/// memory (a few hundred bytes each: tens of MB at most).
const MAX_ENTRIES: usize = 100_000;
/// Bodies larger than this are not kept whole in the log.
const MAX_LOGGED_BODY: usize = 4 * 1024;
/// Requests larger than this are refused before reaching a handler.
const MAX_REQUEST_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string; `""` for a URL ending in a bare `?`, null for none.
    pub query: Option<String>,
    /// The raw request body (form-encoded for Finexer POSTs), null when empty.
    pub body: Option<String>,
    pub timestamp: Timestamp,
    pub status: u16,
    pub duration_ms: u64,
}

impl LoggedRequest {
    /// `"POST /consents"`: how tests compare the calls a client made.
    pub fn call(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The form fields of the body, in order (empty without a body).
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect()
    }

    /// The first value of form field `name`.
    pub fn form_field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find_map(|(key, value)| (key == name).then_some(value))
    }
}

#[derive(Default)]
pub struct RequestLog {
    entries: Mutex<VecDeque<LoggedRequest>>,
    /// API requests being handled right now.
    in_flight: AtomicUsize,
    /// The most handled at once since the log was last cleared.
    peak: AtomicUsize,
}

/// How many API requests the sandbox handles at once: now, and at most since
/// the request log was last cleared (a client's fan-out, seen from Finexer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concurrency {
    pub in_flight: usize,
    pub peak: usize,
}

/// Counts one request in flight until dropped (also when the client hangs
/// up mid-request and the handler's future is dropped).
struct InFlight<'a>(&'a RequestLog);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RequestLog {
    pub fn record(&self, entry: LoggedRequest) {
        let mut entries = self.lock();
        if entries.len() == MAX_ENTRIES {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.lock().iter().cloned().collect()
    }

    /// Empties the log and starts the peak again from what is in flight.
    pub fn clear(&self) {
        self.lock().clear();
        self.peak
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    pub fn concurrency(&self) -> Concurrency {
        Concurrency {
            in_flight: self.in_flight.load(Ordering::SeqCst),
            peak: self.peak.load(Ordering::SeqCst),
        }
    }

    fn start(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<LoggedRequest>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn is_api_path(path: &str) -> bool {
    !(path.starts_with(crate::admin::ADMIN_PREFIX)
        || path.starts_with(crate::pages::PAGE_PREFIX)
        || crate::pages::bank::is_bank_path(path)
        || path.starts_with(crate::pages::LOGO_PREFIX))
}

/// Middleware, outermost, so the status recorded is the one the client saw.
pub async fn record_requests(
    State(state): State<SandboxState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if !is_api_path(&path) {
        return next.run(request).await;
    }
    let in_flight = state.requests.start();
    let started = Instant::now();
    let timestamp = Timestamp::now();
    let method = request.method().to_string();
    let query = request.uri().query().map(str::to_owned);

    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_REQUEST_BODY).await else {
        return ApiError::bad_request("body_too_large", "The request body is too large.")
            .into_response();
    };
    let logged_body = (!bytes.is_empty()).then(|| {
        let kept = &bytes[..bytes.len().min(MAX_LOGGED_BODY)];
        String::from_utf8_lossy(kept).into_owned()
    });
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;

    state.requests.record(LoggedRequest {
        method,
        path,
        query,
        body: logged_body,
        timestamp,
        status: response.status().as_u16(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
    drop(in_flight);
    response
}
