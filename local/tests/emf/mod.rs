//! The functions' metric lines checked against CloudWatch's Embedded Metric
//! Format specification and against the metric contract the alarms and the
//! dashboard are built on. Shared by the tests that run the functions'
//! binaries (`metric_lines.rs`) and the local stack's (`stack/metrics.rs`).
#![allow(dead_code)]

use serde_json::Value;

/// The units CloudWatch accepts (`MetricDatum.Unit`).
pub const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The contract (metric, unit, dimensions besides `Function`), written out
/// here so that a change to `shared::metrics` that breaks it fails a test.
pub const CONTRACT: &[(&str, &str, &[&str])] = &[
    ("ColdStart", "Count", &[]),
    ("LinkCreated", "Count", &[]),
    ("Callback", "Count", &["Outcome"]),
    ("Confirmation", "Count", &["Outcome"]),
    ("Revocation", "Count", &["Outcome"]),
    ("WebhookEvent", "Count", &["EventType", "Verdict"]),
    ("WebhookRefused", "Count", &[]),
    ("FinexerCall", "Count", &["Operation"]),
    ("FinexerError", "Count", &["Operation"]),
    ("FinexerRetry", "Count", &["Operation"]),
    ("FinexerLatency", "Milliseconds", &["Operation"]),
    ("SecretsRefresh", "Count", &[]),
    ("SecretsStale", "Count", &[]),
    ("ReconcileDue", "Count", &[]),
    ("ReconcileProcessed", "Count", &[]),
    ("ReconcileFailed", "Count", &[]),
    ("RevokePendingOverdue", "Count", &[]),
];

pub const FUNCTIONS: &[&str] = &[
    "create-link",
    "callback",
    "confirm",
    "revoke",
    "consents",
    "webhook",
    "reconcile",
];

/// Checks one EMF document against the specification; `Err` says what is
/// wrong.
pub fn check(document: &Value) -> Result<(), String> {
    let root = document.as_object().ok_or("not a JSON object")?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no _aws object")?;
    match aws.get("Timestamp") {
        Some(Value::Number(n)) if n.is_u64() => {}
        other => return Err(format!("_aws.Timestamp is not integer ms: {other:?}")),
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics is not an array")?;
    if directives.is_empty() {
        return Err("_aws.CloudWatchMetrics is empty".into());
    }
    for directive in directives {
        let namespace = directive
            .get("Namespace")
            .and_then(Value::as_str)
            .ok_or("a directive has no Namespace string")?;
        if namespace.is_empty() || namespace.len() > 255 {
            return Err(format!(
                "Namespace {namespace:?} is not 1 to 255 characters"
            ));
        }
        let sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or("Dimensions is not an array")?;
        for set in sets {
            let keys = set
                .as_array()
                .ok_or_else(|| format!("dimension set {set} is not an array"))?;
            if keys.len() > 30 {
                return Err(format!("dimension set {set} has over 30 dimensions"));
            }
            for key in keys {
                let key = key
                    .as_str()
                    .ok_or_else(|| format!("dimension {key} is not a string"))?;
                match root.get(key) {
                    Some(Value::String(_)) => {}
                    other => {
                        return Err(format!(
                            "dimension {key:?} has no string member at the top level: {other:?}"
                        ));
                    }
                }
            }
        }
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or("Metrics is not an array")?;
        if metrics.len() > 100 {
            return Err(format!("{} metrics in one directive", metrics.len()));
        }
        for metric in metrics {
            let name = metric
                .get("Name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("metric {metric} has no Name string"))?;
            if name.is_empty() || name.len() > 1024 {
                return Err(format!("metric name {name:?} is not 1 to 1024 characters"));
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if !values.is_empty()
                        && values.len() <= 100
                        && values.iter().all(Value::is_number) => {}
                other => {
                    return Err(format!(
                        "metric {name:?} has no number (or array of numbers) at the top level: {other:?}"
                    ));
                }
            }
            if let Some(unit) = metric.get("Unit") {
                let unit = unit.as_str().ok_or("Unit is not a string")?;
                if !UNITS.contains(&unit) {
                    return Err(format!("{name}: unit {unit:?} is not CloudWatch's"));
                }
            }
        }
    }
    Ok(())
}

/// The EMF documents among `lines` (JSON objects with `_aws`), each checked
/// against the specification: a bad one fails the test.
pub fn documents<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<Value> {
    let mut out = Vec::new();
    for line in lines {
        let Ok(document) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        if document.get("_aws").is_none() {
            continue;
        }
        if let Err(why) = check(&document) {
            panic!("not valid EMF ({why}): {line}");
        }
        out.push(document);
    }
    out
}

/// The metric names a document's first directive lists.
pub fn names(document: &Value) -> Vec<&str> {
    document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .map(|metrics| metrics.iter().filter_map(|m| m["Name"].as_str()).collect())
        .unwrap_or_default()
}

/// The document of `function` that carries `metric` with `dimensions`
/// (besides `Function`), checked against the contract: its namespace, its
/// unit, and its dimension sets (`[]`, `["Function"]`, and `["Function",
/// <its dimensions>]` when it has any). Panics, listing what there is,
/// when none does.
pub fn expect<'d>(
    documents: &'d [Value],
    namespace: &str,
    function: &str,
    metric: &str,
    dimensions: &[(&str, &str)],
) -> &'d Value {
    let (_, unit, keys) = CONTRACT
        .iter()
        .find(|(name, _, _)| *name == metric)
        .unwrap_or_else(|| panic!("{metric} is not in the contract"));
    let found = documents.iter().find(|document| {
        document["Function"] == function
            && names(document).contains(&metric)
            && dimensions.iter().all(|(k, v)| document[*k] == *v)
    });
    let Some(document) = found else {
        let seen: Vec<String> = documents
            .iter()
            .map(|d| {
                let dims: Vec<String> = CONTRACT
                    .iter()
                    .flat_map(|(_, _, keys)| keys.iter())
                    .filter_map(|k| d[*k].as_str().map(|v| format!("{k}={v}")))
                    .collect();
                format!("{} {:?} {}", d["Function"], names(d), dims.join(","))
            })
            .collect();
        panic!(
            "no {metric} {dimensions:?} line from {function}; saw:\n{}",
            seen.join("\n")
        );
    };
    let directive = &document["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], namespace, "{document}");
    let listed = directive["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Name"] == metric)
        .unwrap();
    assert_eq!(listed["Unit"], *unit, "{document}");
    let mut sets = vec![
        Value::from(Vec::<&str>::new()),
        Value::from(vec!["Function"]),
    ];
    if !keys.is_empty() {
        let mut set = vec!["Function"];
        set.extend(keys.iter());
        sets.push(Value::from(set));
    }
    assert_eq!(directive["Dimensions"], Value::from(sets), "{document}");
    assert!(
        FUNCTIONS.contains(&document["Function"].as_str().unwrap()),
        "{document}"
    );
    for key in *keys {
        assert!(document[*key].is_string(), "{key} missing: {document}");
    }
    document
}

/// `metric`'s value in `document`.
pub fn value(document: &Value, metric: &str) -> f64 {
    document[metric].as_f64().unwrap()
}

/// Whether any line mentions `secret` (tokens, codes, keys must never be
/// printed).
pub fn leaks(lines: &[&str], secret: &str) -> bool {
    !secret.is_empty() && lines.iter().any(|line| line.contains(secret))
}

#[test]
fn the_code_emits_the_contract() {
    let specs: Vec<(&str, &str, Vec<&str>)> = shared::metrics::SPECS
        .iter()
        .map(|s| (s.name, s.unit.as_str(), s.dimensions.to_vec()))
        .collect();
    let contract: Vec<(&str, &str, Vec<&str>)> = CONTRACT
        .iter()
        .map(|(n, u, d)| (*n, *u, d.to_vec()))
        .collect();
    assert_eq!(specs, contract);
    let functions: Vec<&str> = shared::metrics::Function::ALL
        .iter()
        .map(|f| f.name())
        .collect();
    assert_eq!(functions, FUNCTIONS);
}

#[test]
fn the_checker_refuses_what_the_specification_refuses() {
    let good = serde_json::json!({
        "_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N",
            "Dimensions": [[], ["Function"]], "Metrics": [{"Name": "M", "Unit": "Count"}]}]},
        "Function": "callback", "M": 1
    });
    assert_eq!(check(&good), Ok(()));
    let broken = |pointer: &str, value: Value| {
        let mut document = good.clone();
        *document.pointer_mut(pointer).unwrap() = value;
        check(&document).is_err()
    };
    assert!(broken("/_aws/Timestamp", "1".into()));
    assert!(broken("/_aws/Timestamp", 1.5.into()));
    assert!(broken("/_aws/CloudWatchMetrics/0/Namespace", "".into()));
    assert!(broken(
        "/_aws/CloudWatchMetrics/0/Dimensions",
        serde_json::json!(["Function"])
    ));
    assert!(broken(
        "/_aws/CloudWatchMetrics/0/Dimensions/1/0",
        "Missing".into()
    ));
    assert!(broken("/Function", 5.into()));
    assert!(broken("/M", "1".into()));
    assert!(broken(
        "/_aws/CloudWatchMetrics/0/Metrics/0/Unit",
        "Requests".into()
    ));
    let many: Vec<Value> = (0..101)
        .map(|i| serde_json::json!({"Name": format!("M{i}")}))
        .collect();
    assert!(broken("/_aws/CloudWatchMetrics/0/Metrics", many.into()));
    let wide: Vec<String> = (0..31).map(|i| format!("D{i}")).collect();
    assert!(broken(
        "/_aws/CloudWatchMetrics/0/Dimensions",
        serde_json::json!([wide])
    ));
}
