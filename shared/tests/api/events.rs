//! The sample events in `events/` (also used with `cargo lambda invoke`) are
//! real API Gateway v2 events: each is run through its handler here.

use std::path::Path;

use lambda_http::{Body, Request, Response};
use shared::App;

use crate::support::*;

/// (file under events/, expected status)
const EXPECTED: &[(&str, u16)] = &[
    ("create-link/created.json", 201),
    ("create-link/no-claims.json", 401),
    ("create-link/bad-return-to.json", 400),
    ("create-link/unknown-field.json", 400),
    ("callback/forged-state.json", 400),
    ("callback/missing-consent-id.json", 400),
    ("callback/stateless-return.json", 200),
    ("revoke/unknown-consent.json", 404),
    ("revoke/no-claims.json", 401),
    ("confirm/unknown-consent.json", 404),
    ("confirm/malformed-code.json", 400),
    ("confirm/no-claims.json", 401),
    ("consents/list.json", 200),
    ("consents/one-unknown.json", 404),
    ("consents/accounts.json", 200),
    ("consents/no-claims.json", 401),
    ("webhook/missing-signature.json", 401),
    ("webhook/bad-signature.json", 401),
    ("webhook/malformed-signature.json", 401),
    ("webhook/base64-body.json", 401),
];

async fn run(app: &App, function: &str, request: Request) -> Response<Body> {
    match function {
        "create-link" => shared::handlers::create_link(app, request).await,
        "callback" => shared::handlers::callback(app, request).await,
        "revoke" => shared::handlers::revoke(app, request).await,
        "confirm" => shared::handlers::confirm(app, request).await,
        "consents" => shared::handlers::consents(app, request).await,
        "webhook" => shared::handlers::webhook(app, request).await,
        other => panic!("no function {other}"),
    }
}

#[tokio::test]
async fn every_sample_event_gets_its_expected_answer() {
    let env = TestEnv::start().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut seen = 0;
    for function in [
        "create-link",
        "callback",
        "revoke",
        "confirm",
        "consents",
        "webhook",
    ] {
        for entry in std::fs::read_dir(root.join(function)).unwrap() {
            let path = entry.unwrap().path();
            let name = format!("{function}/{}", path.file_name().unwrap().to_string_lossy());
            let expected = EXPECTED
                .iter()
                .find(|(file, _)| *file == name)
                .unwrap_or_else(|| panic!("{name} has no expected status in events.rs"))
                .1;
            let text = std::fs::read_to_string(&path).unwrap();
            let request = lambda_http::request::from_str(&text).unwrap();
            let response = run(&env.app, function, request).await;
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
