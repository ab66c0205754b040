//! The sample events in `events/` (also used with `cargo lambda invoke`) are
//! real API Gateway v2 events: each carries its route's key and path
//! parameters from the route table, and is run through its handler here.

use std::path::Path;

use serde_json::Value;
use shared::routes::{Function, Route};

use crate::support::*;

/// (file under events/, expected status)
const EXPECTED: &[(&str, u16)] = &[
    ("create-link/created.json", 201),
    ("create-link/no-claims.json", 401),
    ("create-link/bad-return-to.json", 400),
    ("create-link/unknown-field.json", 400),
    ("create-link/with-challenge.json", 201),
    ("create-link/plain-challenge-method.json", 400),
    ("callback/forged-state.json", 400),
    ("callback/missing-consent-id.json", 400),
    ("callback/stateless-return.json", 200),
    ("revoke/unknown-consent.json", 404),
    ("revoke/no-claims.json", 401),
    ("confirm/unknown-consent.json", 404),
    ("confirm/malformed-code.json", 400),
    ("confirm/no-claims.json", 401),
    // Well-formed proofs reach the record: none of that id here.
    ("confirm/with-verifier.json", 404),
    ("confirm/confirmed-by-user.json", 404),
    ("confirm/both-proofs.json", 400),
    ("consents/list.json", 200),
    ("consents/one-unknown.json", 404),
    ("consents/accounts.json", 200),
    ("consents/no-claims.json", 401),
    ("webhook/missing-signature.json", 401),
    ("webhook/bad-signature.json", 401),
    ("webhook/malformed-signature.json", 401),
    ("webhook/base64-body.json", 401),
];

/// The sample carries what API Gateway would send by the route its path
/// takes: the route's key (in both places) and its path parameters.
fn check_route(name: &str, function: Function, event: &Value) {
    let method = event["requestContext"]["http"]["method"].as_str().unwrap();
    let path = event["rawPath"].as_str().unwrap();
    let (route, parameters) = Route::find(method, path)
        .unwrap_or_else(|| panic!("{name}: {method} {path} takes no route of the table"));
    assert_eq!(
        route.function, function,
        "{name}: the route is another function's"
    );
    assert_eq!(event["routeKey"], route.key, "{name}: routeKey");
    assert_eq!(
        event["requestContext"]["routeKey"], route.key,
        "{name}: requestContext.routeKey"
    );
    let expected: serde_json::Map<String, Value> = parameters
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into()))
        .collect();
    let given = event.get("pathParameters").cloned().unwrap_or(Value::Null);
    if expected.is_empty() {
        assert!(
            given.is_null(),
            "{name}: pathParameters on a route without any"
        );
    } else {
        assert_eq!(given, Value::Object(expected), "{name}: pathParameters");
    }
}

#[tokio::test]
async fn every_sample_event_gets_its_expected_answer() {
    let env = TestEnv::start().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut seen = 0;
    for function in Function::ALL.into_iter().filter(|f| !f.is_scheduled()) {
        for entry in std::fs::read_dir(root.join(function.name())).unwrap() {
            let path = entry.unwrap().path();
            let name = format!(
                "{}/{}",
                function.name(),
                path.file_name().unwrap().to_string_lossy()
            );
            let expected = EXPECTED
                .iter()
                .find(|(file, _)| *file == name)
                .unwrap_or_else(|| panic!("{name} has no expected status in events.rs"))
                .1;
            let text = std::fs::read_to_string(&path).unwrap();
            check_route(&name, function, &serde_json::from_str(&text).unwrap());
            let request = lambda_http::request::from_str(&text).unwrap();
            let response = shared::handlers::dispatch(function, &env.app, request).await;
            assert_eq!(
                response.status().as_u16(),
                expected,
                "{name}: {:?}",
                response.body()
            );
            seen += 1;
        }
    }
    assert_eq!(seen, EXPECTED.len(), "every listed event exists");
}

#[tokio::test]
async fn the_schedules_input_runs_the_reconciler() {
    let env = TestEnv::start().await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/reconcile/scheduled.json");
    let input: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // As `lambda::run_scheduled` reads it: unknown fields are ignored.
    let run: shared::handlers::reconcile::Run = serde_json::from_value(input).unwrap();
    let report = shared::handlers::reconcile(&env.app, run).await.unwrap();
    assert_eq!(report.due, 0, "{report:?}");
}
