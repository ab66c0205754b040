//! Every metric of the contract, triggered on the local stack (the handlers
//! in-process, their metrics captured through the stack's sink) and its
//! line checked: valid EMF, the contract's namespace, unit and dimension
//! sets, the function that emitted it, and no token or code in any line.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::emf;
use crate::support::*;

const NAMESPACE: &str = "Connect/stack-test";

/// The line of `function` carrying `metric` with `dimensions`.
fn expect(stack: &Stack, function: &str, metric: &str, dimensions: &[(&str, &str)]) -> Value {
    let documents = stack.metric_documents();
    emf::expect(&documents, NAMESPACE, function, metric, dimensions).clone()
}

#[tokio::test]
async fn every_metric_of_the_contract_is_emitted_as_valid_emf() {
    let stack = Stack::with(&[("METRICS_NAMESPACE", NAMESPACE)]).await;
    let token = stack.token("metrics-alice").await;
    let mut secrets = vec![token.clone()];

    // create-link: the first invocation, the secret fetched, two Finexer calls.
    let (approved, _) = stack.link(&token).await;
    expect(&stack, "create-link", "ColdStart", &[]);
    expect(&stack, "create-link", "SecretsRefresh", &[]);
    expect(&stack, "create-link", "LinkCreated", &[]);
    for operation in ["create_customer", "create_consent"] {
        let line = expect(
            &stack,
            "create-link",
            "FinexerCall",
            &[("Operation", operation)],
        );
        assert_eq!(emf::value(&line, "FinexerCall"), 1.0);
        assert!(emf::value(&line, "FinexerLatency") >= 0.0, "{line}");
    }

    // callback: approved, its reload replayed, a forged state invalid.
    let callback = stack.decide(&approved, Decision::Approve).await;
    secrets.push(query_of(&callback)["state"].clone());
    let response = stack.get(&callback).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let back = returned(response.headers()["location"].to_str().unwrap());
    secrets.push(back["code"].clone());
    expect(&stack, "callback", "Callback", &[("Outcome", "approved")]);
    assert_eq!(stack.get(&callback).await.status(), StatusCode::SEE_OTHER);
    expect(&stack, "callback", "Callback", &[("Outcome", "replayed")]);
    let forged = format!("{}/callback?fx_consent={approved}&state=forged", stack.base);
    assert_eq!(stack.get(&forged).await.status(), StatusCode::BAD_REQUEST);
    expect(&stack, "callback", "Callback", &[("Outcome", "invalid")]);

    // A denial at the bank.
    let (denied, _) = stack.link(&token).await;
    let callback = stack.decide(&denied, Decision::Deny).await;
    assert_eq!(stack.get(&callback).await.status(), StatusCode::SEE_OTHER);
    expect(&stack, "callback", "Callback", &[("Outcome", "denied")]);

    // confirm: confirmed, repeated, a wrong code rejected.
    let (status, body) = stack.confirm(&token, &approved, &back["code"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    expect(
        &stack,
        "confirm",
        "Confirmation",
        &[("Outcome", "confirmed")],
    );
    let (status, _) = stack.confirm(&token, &approved, &back["code"]).await;
    assert_eq!(status, StatusCode::OK);
    expect(
        &stack,
        "confirm",
        "Confirmation",
        &[("Outcome", "repeated")],
    );
    let (status, _) = stack.confirm(&token, &approved, "wrong").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    expect(
        &stack,
        "confirm",
        "Confirmation",
        &[("Outcome", "rejected")],
    );

    // A Finexer read failing once: retried within the call.
    let (retried, _) = stack.link(&token).await;
    let callback = stack.decide(&retried, Decision::Approve).await;
    stack
        .fault(json!({"method": "GET", "path_prefix": "/consents/", "status": 503, "count": 1}))
        .await;
    let response = stack.get(&callback).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    stack.clear_faults().await;
    let back = returned(response.headers()["location"].to_str().unwrap());
    let (status, _) = stack.confirm(&token, &retried, &back["code"]).await;
    assert_eq!(status, StatusCode::OK);
    let line = expect(
        &stack,
        "callback",
        "FinexerRetry",
        &[("Operation", "get_consent")],
    );
    assert_eq!(emf::value(&line, "FinexerRetry"), 1.0, "{line}");
    assert!(line.get("FinexerError").is_none(), "it succeeded: {line}");

    // A revocation Finexer refuses: an error, left pending.
    stack
        .fault(
            json!({"method": "POST", "path_prefix": format!("/consents/{approved}/revoke"),
                      "status": 500}),
        )
        .await;
    let (status, _) = stack
        .api(&token, "POST", &format!("/consents/{approved}/revoke"))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    stack.clear_faults().await;
    let line = expect(
        &stack,
        "revoke",
        "FinexerError",
        &[("Operation", "revoke_consent")],
    );
    assert_eq!(emf::value(&line, "FinexerError"), 1.0, "{line}");
    assert_eq!(
        emf::value(&line, "FinexerRetry"),
        2.0,
        "two retries: {line}"
    );
    expect(&stack, "revoke", "Revocation", &[("Outcome", "pending")]);

    // Two hours on, the reconciler finishes it: overdue (asked over 1 h ago).
    let report = stack.reconcile(json!({"at": in_seconds(7200)})).await;
    assert!(report.processed >= 1, "{report:?}");
    let run = expect(&stack, "reconcile", "RevokePendingOverdue", &[]);
    assert_eq!(emf::value(&run, "RevokePendingOverdue"), 1.0, "{run}");
    assert_eq!(emf::value(&run, "ReconcileDue"), report.due as f64);
    assert_eq!(
        emf::value(&run, "ReconcileProcessed"),
        report.processed as f64
    );
    assert_eq!(emf::value(&run, "ReconcileFailed"), 0.0);
    for metric in ["ReconcileDue", "ReconcileProcessed", "ReconcileFailed"] {
        expect(&stack, "reconcile", metric, &[]);
    }
    expect(&stack, "reconcile", "ColdStart", &[]);
    expect(
        &stack,
        "reconcile",
        "Revocation",
        &[("Outcome", "completed")],
    );

    // The owner revokes: completed at once.
    let (status, _) = stack
        .api(&token, "POST", &format!("/consents/{retried}/revoke"))
        .await;
    assert_eq!(status, StatusCode::OK);
    expect(&stack, "revoke", "Revocation", &[("Outcome", "completed")]);

    // webhook: handled, duplicate, unknown consent, an ignored type, refused.
    let delivery = event("evt_metrics_1", "consent.canceled", &retried);
    let response = stack.webhook(&delivery, Some(&signed(&delivery))).await;
    assert_eq!(response.status(), StatusCode::OK);
    expect(
        &stack,
        "webhook",
        "WebhookEvent",
        &[("EventType", "consent.canceled"), ("Verdict", "handled")],
    );
    let response = stack.webhook(&delivery, Some(&signed(&delivery))).await;
    assert_eq!(response.status(), StatusCode::OK);
    expect(
        &stack,
        "webhook",
        "WebhookEvent",
        &[("EventType", "consent.canceled"), ("Verdict", "duplicate")],
    );
    let stranger = event("evt_metrics_2", "consent.expired", "bc_not_ours");
    stack.webhook(&stranger, Some(&signed(&stranger))).await;
    expect(
        &stack,
        "webhook",
        "WebhookEvent",
        &[
            ("EventType", "consent.expired"),
            ("Verdict", "unknown_consent"),
        ],
    );
    let odd = event("evt_metrics_3", "payment.created", &retried);
    stack.webhook(&odd, Some(&signed(&odd))).await;
    expect(
        &stack,
        "webhook",
        "WebhookEvent",
        &[("EventType", "other"), ("Verdict", "ignored")],
    );
    let response = stack.webhook(&delivery, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    expect(&stack, "webhook", "WebhookRefused", &[]);

    // consents: its first invocation.
    stack.consent(&token, &retried).await;
    expect(&stack, "consents", "ColdStart", &[]);

    // One cold start per function; nothing secret in any line.
    let documents = stack.metric_documents();
    for function in emf::FUNCTIONS {
        let cold = documents
            .iter()
            .filter(|d| d["Function"] == *function && emf::names(d).contains(&"ColdStart"))
            .count();
        assert!(cold <= 1, "{function}: {cold} cold starts");
    }
    let lines = stack.metrics.lines();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    for secret in &secrets {
        assert!(!emf::leaks(&lines, secret), "a metric line holds a secret");
    }
    for id in [&approved, &denied, &retried] {
        assert!(!emf::leaks(&lines, id), "a metric line names a consent");
    }
}

#[tokio::test]
async fn a_failed_secret_refresh_serves_the_stale_value_and_says_so() {
    // Fetched on every use, so the next use after a cut must refresh.
    let stack = Stack::with(&[
        ("METRICS_NAMESPACE", NAMESPACE),
        ("SECRETS_CACHE_SECONDS", "0"),
    ])
    .await;
    let delivery = event("evt_stale_1", "consent.canceled", "bc_any");
    // A forged signature: the secret is read, the delivery refused.
    let forged = format!("t={};s={}", in_seconds(0), "0".repeat(64));
    let response = stack.webhook(&delivery, Some(&forged)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    expect(&stack, "webhook", "SecretsRefresh", &[]);

    // Secrets Manager (moto, behind the proxy) cut off: the last good value.
    stack.dynamo.cut().await;
    let response = stack.webhook(&delivery, Some(&forged)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    stack.dynamo.restore();
    let line = expect(&stack, "webhook", "SecretsStale", &[]);
    assert_eq!(emf::value(&line, "SecretsStale"), 1.0);
    let refreshes = stack
        .metric_documents()
        .iter()
        .filter(|d| emf::names(d).contains(&"SecretsRefresh"))
        .count();
    assert_eq!(refreshes, 2, "one good fetch, one failed");
}
