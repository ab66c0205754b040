//! Fault injection, so clients can be tested against a misbehaving Finexer:
//! rules set at start-up or through `/_sandbox/faults`, and a per-request
//! `x-sandbox-fault` header. Admin endpoints are never affected.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::state::SandboxState;

/// Per-request override, e.g. `x-sandbox-fault: status=503;retry_after=2` or `latency_ms=2000`.
pub const FAULT_HEADER: &str = "x-sandbox-fault";

/// One rule; as JSON every field is optional:
/// `{"method":"GET","path_prefix":"/consents","status":500,"rate":1.0,"latency_ms":0,"retry_after":null,"count":null}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRule {
    /// HTTP method to match (any when absent).
    pub method: Option<String>,
    /// Requests whose path starts with this are affected.
    pub path_prefix: String,
    /// Answer with this status (400-599) in Finexer's error shape; absent = only delay.
    pub status: Option<u16>,
    /// Fraction of matching requests affected, applied deterministically
    /// (0.5 hits every second match).
    pub rate: f64,
    /// Delay before answering (or before handling, when `status` is absent).
    pub latency_ms: u64,
    /// Seconds for a `Retry-After` header on the fault answer.
    pub retry_after: Option<u64>,
    /// Stop firing after this many hits.
    pub count: Option<u64>,
}

impl Default for FaultRule {
    fn default() -> Self {
        Self {
            method: None,
            path_prefix: "/".to_owned(),
            status: None,
            rate: 1.0,
            latency_ms: 0,
            retry_after: None,
            count: None,
        }
    }
}

impl FaultRule {
    /// A rule answering every matching request with `status`.
    pub fn failing(method: Option<&str>, path_prefix: &str, status: u16) -> Self {
        Self {
            method: method.map(str::to_owned),
            path_prefix: path_prefix.to_owned(),
            status: Some(status),
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(status) = self.status.filter(|status| !(400..=599).contains(status)) {
            return Err(format!("status {status} is not an error status (400-599)"));
        }
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(format!("rate {} is outside 0.0-1.0", self.rate));
        }
        if !self.path_prefix.starts_with('/') {
            return Err(format!(
                "path_prefix {:?} must start with '/'",
                self.path_prefix
            ));
        }
        Ok(())
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let method_matches = self
            .method
            .as_deref()
            .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method));
        method_matches && path.starts_with(&self.path_prefix)
    }
}

/// What to do to one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fault {
    pub latency: Duration,
    pub status: Option<StatusCode>,
    pub retry_after: Option<u64>,
}

impl Fault {
    /// Parses the `x-sandbox-fault` header: `key=value` pairs separated by `;`, `,` or `&`.
    pub fn from_header(value: &str) -> Result<Self, String> {
        let mut fault = Self::default();
        for setting in value
            .split([';', ',', '&'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (key, raw) = setting
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {setting:?}"))?;
            let number: u64 = raw
                .trim()
                .parse()
                .map_err(|_| format!("{key} must be a whole number, got {raw:?}"))?;
            match key.trim() {
                "status" => fault.status = Some(error_status(number)?),
                "latency_ms" => fault.latency = Duration::from_millis(number),
                "retry_after" => fault.retry_after = Some(number),
                other => return Err(format!("unknown setting {other:?}")),
            }
        }
        Ok(fault)
    }
}

fn error_status(number: u64) -> Result<StatusCode, String> {
    u16::try_from(number)
        .ok()
        .filter(|code| (400..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| format!("status {number} is not an error status (400-599)"))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleReport {
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Requests that matched method and path.
    pub matched: u64,
    /// Requests the rule was applied to.
    pub fired: u64,
}

struct ActiveRule {
    rule: FaultRule,
    matched: u64,
    fired: u64,
    /// Accumulates `rate` per match; the rule fires each time it reaches 1.
    credit: f64,
}

#[derive(Default)]
pub struct FaultInjector {
    rules: Mutex<Vec<ActiveRule>>,
}

impl FaultInjector {
    pub fn new(rules: Vec<FaultRule>) -> Self {
        let injector = Self::default();
        injector.replace(rules);
        injector
    }

    pub fn replace(&self, rules: Vec<FaultRule>) {
        *self.lock() = rules
            .into_iter()
            .map(|rule| ActiveRule {
                rule,
                matched: 0,
                fired: 0,
                credit: 0.0,
            })
            .collect();
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn report(&self) -> Vec<RuleReport> {
        self.lock()
            .iter()
            .map(|active| RuleReport {
                rule: active.rule.clone(),
                matched: active.matched,
                fired: active.fired,
            })
            .collect()
    }

    /// The first rule that matches and whose turn it is decides the request's fate.
    pub fn decide(&self, method: &str, path: &str) -> Option<Fault> {
        let mut rules = self.lock();
        for active in rules.iter_mut() {
            if !active.rule.matches(method, path) {
                continue;
            }
            if active.rule.count.is_some_and(|limit| active.fired >= limit) {
                continue;
            }
            active.matched += 1;
            active.credit += active.rule.rate;
            // The epsilon keeps rates like 0.1 from drifting just below a whole hit.
            if active.credit < 1.0 - 1e-9 {
                continue;
            }
            active.credit -= 1.0;
            active.fired += 1;
            return Some(Fault {
                latency: Duration::from_millis(active.rule.latency_ms),
                status: active
                    .rule
                    .status
                    .and_then(|code| StatusCode::from_u16(code).ok()),
                retry_after: active.rule.retry_after,
            });
        }
        None
    }

    fn lock(&self) -> MutexGuard<'_, Vec<ActiveRule>> {
        self.rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Middleware: applies the header override or the first firing rule.
pub async fn inject_faults(
    State(state): State<SandboxState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path.starts_with(crate::admin::ADMIN_PREFIX) {
        return next.run(request).await;
    }
    let fault = match request.headers().get(FAULT_HEADER) {
        Some(value) => {
            let parsed = value
                .to_str()
                .map_err(|_| "header is not ASCII".to_owned())
                .and_then(Fault::from_header);
            match parsed {
                Ok(fault) => Some(fault),
                Err(why) => {
                    return ApiError::bad_request(
                        "invalid_fault_header",
                        format!("{FAULT_HEADER}: {why}."),
                    )
                    .into_response();
                }
            }
        }
        None => state.faults.decide(request.method().as_str(), path),
    };
    let Some(fault) = fault else {
        return next.run(request).await;
    };
    if !fault.latency.is_zero() {
        tokio::time::sleep(fault.latency).await;
    }
    match fault.status {
        Some(status) => ApiError::injected(status, fault.retry_after).into_response(),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_count_are_deterministic() {
        let injector = FaultInjector::new(vec![FaultRule {
            rate: 0.5,
            count: Some(2),
            ..FaultRule::failing(Some("GET"), "/consents", 500)
        }]);
        let hits: Vec<bool> = (0..8)
            .map(|_| injector.decide("GET", "/consents/bc_1").is_some())
            .collect();
        assert_eq!(hits, [false, true, false, true, false, false, false, false]);
        assert!(injector.decide("POST", "/consents").is_none());
        assert_eq!(injector.report()[0].fired, 2);
    }

    #[test]
    fn header_settings_parse() {
        let fault = Fault::from_header("status=429; retry_after=7, latency_ms=15").unwrap();
        assert_eq!(fault.status, Some(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(fault.retry_after, Some(7));
        assert_eq!(fault.latency, Duration::from_millis(15));
        assert!(Fault::from_header("status=200").is_err());
        assert!(Fault::from_header("explode=1").is_err());
    }

    #[test]
    fn rules_are_validated() {
        assert!(FaultRule::failing(None, "/", 503).validate().is_ok());
        assert!(FaultRule::failing(None, "/", 302).validate().is_err());
        assert!(
            FaultRule {
                rate: 1.5,
                ..FaultRule::default()
            }
            .validate()
            .is_err()
        );
    }
}
