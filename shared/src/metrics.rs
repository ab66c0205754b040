//! The functions' CloudWatch metrics, as Embedded Metric Format (EMF) lines
//! on stdout: CloudWatch Logs extracts them, no API call is made.
//!
//! The single source of the metric names: one `pub const NAME: &str` per
//! metric below, its unit and dimensions in its doc comment (the infra
//! checks read these lines). Every metric carries `Function` (the function's
//! name: create-link, callback, confirm, revoke, consents, webhook,
//! reconcile), and every line lists the dimension sets `[]` (stack-wide),
//! `["Function"]` and, for a metric with its own dimensions,
//! `["Function", <those>]`, so alarms can use any of them.
//!
//! Emission is scoped to an invocation: the runtime glue
//! ([`crate::lambda::observed`], the local stack's gateway) runs each
//! invocation in [`Metrics::scope`], which names the function, and the code
//! under it calls [`count`] or [`record`]. Outside a scope (unit tests,
//! tools) nothing is emitted. Emitting never fails a request: a line that
//! cannot be written is dropped. Dimension values are fixed words (outcomes,
//! operation and event type names), never ids, tokens, codes or account
//! data.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// Count; dimensions: Function. Once per process (per function on the local stack), at its first invocation.
pub const COLD_START: &str = "ColdStart";
/// Count; dimensions: Function. create-link answered 201.
pub const LINK_CREATED: &str = "LinkCreated";
/// Count; dimensions: Function, Outcome (approved, denied, failed, replayed, invalid). Each callback.
pub const CALLBACK: &str = "Callback";
/// Count; dimensions: Function, Outcome (confirmed, repeated, rejected, another_user, expired). Each confirm.
pub const CONFIRMATION: &str = "Confirmation";
/// Count; dimensions: Function, Outcome (completed, pending). Each revocation finished or left pending, any source.
pub const REVOCATION: &str = "Revocation";
/// Count; dimensions: Function, EventType, Verdict (handled, duplicate, ignored, unknown_consent, failed). Each verified delivery.
pub const WEBHOOK_EVENT: &str = "WebhookEvent";
/// Count; dimensions: Function. A webhook delivery refused with 401.
pub const WEBHOOK_REFUSED: &str = "WebhookRefused";
/// Count; dimensions: Function, Operation. Each Finexer call, after its retries.
pub const FINEXER_CALL: &str = "FinexerCall";
/// Count; dimensions: Function, Operation. A Finexer call that ended in an error answered 5xx (unavailable, refused, invalid).
pub const FINEXER_ERROR: &str = "FinexerError";
/// Count; dimensions: Function, Operation. Each retry attempt of a Finexer call.
pub const FINEXER_RETRY: &str = "FinexerRetry";
/// Milliseconds; dimensions: Function, Operation. Each Finexer call's total time, retries included.
pub const FINEXER_LATENCY: &str = "FinexerLatency";
/// Count; dimensions: Function. Each Secrets Manager fetch.
pub const SECRETS_REFRESH: &str = "SecretsRefresh";
/// Count; dimensions: Function. A stale cached secret served because a fetch failed.
pub const SECRETS_STALE: &str = "SecretsStale";
/// Count; dimensions: Function. Per reconcile run: records listed as due.
pub const RECONCILE_DUE: &str = "ReconcileDue";
/// Count; dimensions: Function. Per reconcile run: records claimed and handled.
pub const RECONCILE_PROCESSED: &str = "ReconcileProcessed";
/// Count; dimensions: Function. Per reconcile run: records left for a later run after a failure.
pub const RECONCILE_FAILED: &str = "ReconcileFailed";
/// Count; dimensions: Function. Per reconcile run: revoke_pending records it handled whose revoke was requested over 1 h ago.
pub const REVOKE_PENDING_OVERDUE: &str = "RevokePendingOverdue";

/// A CloudWatch unit (the subset used here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// A metric's unit and its dimensions besides `Function`.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub unit: Unit,
    pub dimensions: &'static [&'static str],
}

/// Every metric, as the contract with the alarms and the dashboard fixes it.
pub const SPECS: &[Spec] = &[
    spec(COLD_START, Unit::Count, &[]),
    spec(LINK_CREATED, Unit::Count, &[]),
    spec(CALLBACK, Unit::Count, &["Outcome"]),
    spec(CONFIRMATION, Unit::Count, &["Outcome"]),
    spec(REVOCATION, Unit::Count, &["Outcome"]),
    spec(WEBHOOK_EVENT, Unit::Count, &["EventType", "Verdict"]),
    spec(WEBHOOK_REFUSED, Unit::Count, &[]),
    spec(FINEXER_CALL, Unit::Count, &["Operation"]),
    spec(FINEXER_ERROR, Unit::Count, &["Operation"]),
    spec(FINEXER_RETRY, Unit::Count, &["Operation"]),
    spec(FINEXER_LATENCY, Unit::Milliseconds, &["Operation"]),
    spec(SECRETS_REFRESH, Unit::Count, &[]),
    spec(SECRETS_STALE, Unit::Count, &[]),
    spec(RECONCILE_DUE, Unit::Count, &[]),
    spec(RECONCILE_PROCESSED, Unit::Count, &[]),
    spec(RECONCILE_FAILED, Unit::Count, &[]),
    spec(REVOKE_PENDING_OVERDUE, Unit::Count, &[]),
];

const fn spec(name: &'static str, unit: Unit, dimensions: &'static [&'static str]) -> Spec {
    Spec {
        name,
        unit,
        dimensions,
    }
}

pub fn spec_of(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|spec| spec.name == name)
}

/// The functions, by the name the `Function` dimension gives them: the
/// route table's list.
pub use crate::routes::Function;

/// Where EMF lines go: stdout in Lambda (CloudWatch Logs extracts them);
/// tests capture them instead.
#[derive(Clone)]
pub struct Sink(Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

impl Sink {
    /// One line per write to stdout, under its lock, so lines from
    /// concurrent requests and the log never interleave.
    pub fn stdout() -> Sink {
        Sink(Arc::new(|line: &str| {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed stdout loses the metric, never the request.
            let _ = out.write_all(line.as_bytes());
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }))
    }

    pub fn new(write: impl Fn(&str) + Send + Sync + 'static) -> Sink {
        Sink(Arc::new(write))
    }

    /// A sink that keeps its lines, and the handle that reads them.
    pub fn capture() -> (Sink, Captured) {
        let captured = Captured::default();
        let lines = captured.0.clone();
        let sink = Sink::new(move |line| {
            if let Ok(mut lines) = lines.lock() {
                lines.push(line.to_owned());
            }
        });
        (sink, captured)
    }
}

/// The lines a [`Sink::capture`] sink received.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<String>>>);

impl Captured {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|lines| lines.clone()).unwrap_or_default()
    }
}

/// The namespace and sink of one process's metrics (one per [`crate::App`]).
#[derive(Clone, Debug)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    namespace: String,
    sink: Sink,
    /// Whether each function has had its first invocation.
    started: [AtomicBool; Function::ALL.len()],
}

struct Scope {
    metrics: Metrics,
    function: Function,
    /// The consent the invocation is about, once known (for its log line).
    consent_id: Mutex<Option<String>>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

impl Metrics {
    pub fn new(namespace: &str, sink: Sink) -> Metrics {
        Metrics(Arc::new(Inner {
            namespace: namespace.to_owned(),
            sink,
            started: Default::default(),
        }))
    }

    pub fn namespace(&self) -> &str {
        &self.0.namespace
    }

    /// Runs one invocation of `function`: what it emits names the function.
    /// The function's first invocation also emits [`COLD_START`].
    pub async fn scope<F: Future>(&self, function: Function, invocation: F) -> F::Output {
        self.background(function, async move {
            let first = !self.0.started[function as usize].swap(true, Ordering::Relaxed);
            if first {
                count(COLD_START, &[]);
            }
            invocation.await
        })
        .await
    }

    /// Runs `function`'s work outside an invocation (the start-up prefetch):
    /// what it emits names the function, and no cold start is counted.
    pub async fn background<F: Future>(&self, function: Function, work: F) -> F::Output {
        let scope = Scope {
            metrics: self.clone(),
            function,
            consent_id: Mutex::new(None),
        };
        SCOPE.scope(scope, work).await
    }
}

/// Adds one to `name`, with its dimensions besides `Function`.
pub fn count(name: &'static str, dimensions: &[(&'static str, &str)]) {
    record(&[(name, 1.0)], dimensions);
}

/// Emits the metrics `values` (names and values; the units are their
/// [`SPECS`]') in one line sharing `dimensions`.
pub fn record(values: &[(&'static str, f64)], dimensions: &[(&'static str, &str)]) {
    let _ = SCOPE.try_with(|scope| {
        let line = line(
            &scope.metrics.0.namespace,
            scope.function,
            values,
            dimensions,
            unix_millis(),
        );
        (scope.metrics.0.sink.0)(&line);
    });
}

/// The consent the current invocation is about, for its log line.
pub fn note_consent(consent_id: &str) {
    let _ = SCOPE.try_with(|scope| {
        if let Ok(mut noted) = scope.consent_id.lock() {
            *noted = Some(consent_id.to_owned());
        }
    });
}

/// What [`note_consent`] noted in the current invocation.
pub fn noted_consent() -> Option<String> {
    SCOPE
        .try_with(|scope| scope.consent_id.lock().ok()?.clone())
        .ok()
        .flatten()
}

/// The Finexer client's one line per call: count, latency, retries, error.
pub fn finexer_call(operation: &'static str, took: Duration, retries: u32, failed: bool) {
    let mut values = vec![
        (FINEXER_CALL, 1.0),
        (FINEXER_LATENCY, took.as_secs_f64() * 1000.0),
    ];
    if retries > 0 {
        values.push((FINEXER_RETRY, f64::from(retries)));
    }
    if failed {
        values.push((FINEXER_ERROR, 1.0));
    }
    record(&values, &[("Operation", operation)]);
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One EMF document: `_aws` (timestamp, namespace, dimension sets, metric
/// names and units), then the dimensions and values as top-level keys.
fn line(
    namespace: &str,
    function: Function,
    values: &[(&'static str, f64)],
    dimensions: &[(&'static str, &str)],
    timestamp: u64,
) -> String {
    let mut sets: Vec<Vec<&str>> = vec![vec![], vec!["Function"]];
    if !dimensions.is_empty() {
        sets.push(
            std::iter::once("Function")
                .chain(dimensions.iter().map(|(key, _)| *key))
                .collect(),
        );
    }
    let metrics: Vec<Value> = values
        .iter()
        .map(|(name, _)| {
            let unit = spec_of(name).map_or(Unit::Count, |spec| spec.unit);
            json!({"Name": name, "Unit": unit.as_str()})
        })
        .collect();
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": sets,
                "Metrics": metrics,
            }],
        }),
    );
    document.insert("Function".into(), function.name().into());
    for (key, value) in dimensions {
        document.insert((*key).into(), (*value).into());
    }
    for (name, value) in values {
        // Whole numbers stay integers; a non-finite value (impossible here)
        // would not be JSON, so it becomes 0.
        let value = if value.fract() == 0.0 && value.abs() < 9.0e15 {
            Value::from(*value as i64)
        } else {
            serde_json::Number::from_f64(*value).map_or(Value::from(0), Value::Number)
        };
        document.insert((*name).into(), value);
    }
    Value::Object(document).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_lists_the_empty_the_function_and_the_specific_dimension_sets() {
        let text = line(
            "Ns",
            Function::Callback,
            &[(CALLBACK, 1.0)],
            &[("Outcome", "approved")],
            1_700_000_000_123,
        );
        let line: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            line,
            json!({
                "_aws": {"Timestamp": 1_700_000_000_123u64, "CloudWatchMetrics": [{
                    "Namespace": "Ns",
                    "Dimensions": [[], ["Function"], ["Function", "Outcome"]],
                    "Metrics": [{"Name": "Callback", "Unit": "Count"}],
                }]},
                "Function": "callback", "Outcome": "approved", "Callback": 1,
            })
        );
    }

    #[test]
    fn every_spec_is_named_once_and_every_name_line_is_one_const() {
        let mut names: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SPECS.len());
        // The infra side parses `pub const X: &str = "...";` lines: exactly
        // the metrics, nothing else.
        let source = include_str!("metrics.rs");
        let consts: Vec<&str> = source
            .lines()
            .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \""))
            .map(|l| l.split('"').nth(1).unwrap())
            .collect();
        let mut sorted = consts.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, names);
    }

    #[tokio::test]
    async fn nothing_is_emitted_outside_a_scope_and_cold_start_comes_once() {
        count(LINK_CREATED, &[]);
        let (sink, captured) = Sink::capture();
        let metrics = Metrics::new("Ns", sink);
        for _ in 0..2 {
            metrics
                .scope(Function::CreateLink, async { count(LINK_CREATED, &[]) })
                .await;
        }
        metrics.scope(Function::Revoke, async {}).await;
        let names: Vec<String> = captured
            .lines()
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                format!(
                    "{} {}",
                    v["Function"].as_str().unwrap(),
                    v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"]
                        .as_str()
                        .unwrap()
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                "create-link ColdStart",
                "create-link LinkCreated",
                "create-link LinkCreated",
                "revoke ColdStart"
            ]
        );
    }
}
