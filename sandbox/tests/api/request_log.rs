//! `/_sandbox/requests`: what API calls arrived, for counting round trips.

use crate::helpers::TestSandbox;
use finexer_sandbox::model::ConsentStatus;

#[tokio::test]
async fn api_requests_are_logged_with_status_and_body_and_can_be_cleared() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.pending_consent(&[("scopes[]", "balance")]).await;
    sandbox.get("/providers?limit=5").await;
    sandbox.get("/consents/bc_missing").await;
    // Pages and admin calls are not API round trips.
    sandbox.page(&sandbox.page_path(&consent)).await;
    sandbox.admin.health().await.unwrap();

    let entries = sandbox.admin.requests().await.unwrap();
    let summary: Vec<(String, u16)> = entries
        .iter()
        .map(|entry| (entry.call(), entry.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("POST /customers".to_owned(), 200),
            ("POST /consents".to_owned(), 200),
            ("GET /providers".to_owned(), 200),
            ("GET /consents/bc_missing".to_owned(), 404),
        ]
    );
    assert_eq!(entries[2].query.as_deref(), Some("limit=5"));
    assert!(
        entries[1]
            .body
            .as_deref()
            .unwrap()
            .contains("scopes%5B%5D=balance")
    );
    assert_eq!(
        entries[1].form_field("scopes[]").as_deref(),
        Some("balance")
    );
    assert_eq!(
        entries[1].form_field("return_url").as_deref(),
        Some("https://app.example/callback/sess-1?state=st%2B1&lang=en"),
        "form fields are decoded"
    );
    assert_eq!(entries[0].body.as_deref().map(str::is_empty), Some(false));
    assert!(entries[0].timestamp.to_string().ends_with('Z'));
    assert_eq!(sandbox.admin.calls().await.unwrap().len(), 4);

    sandbox.admin.clear_requests().await.unwrap();
    assert!(sandbox.admin.requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_admin_consent_views_are_not_logged_and_unknown_ids_are_typed_404s() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.pending_consent(&[]).await;
    let id = consent["id"].as_str().unwrap();
    let calls_before = sandbox.admin.calls().await.unwrap();

    let held = sandbox.admin.consent(id).await.unwrap();
    assert_eq!(held.id, id);
    assert_eq!(held.object, "consent");
    assert_eq!(
        held.redirect.return_url.as_deref(),
        consent["redirect"]["return_url"].as_str()
    );
    assert_eq!(
        sandbox.admin.calls().await.unwrap(),
        calls_before,
        "not logged"
    );

    let pending = sandbox
        .admin
        .consents_in(ConsentStatus::Pending)
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [id]
    );
    sandbox
        .admin
        .set_status(id, ConsentStatus::Authorized)
        .await
        .unwrap();
    assert!(
        sandbox
            .admin
            .consents_in(ConsentStatus::Pending)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        sandbox
            .admin
            .consents_in(ConsentStatus::Authorized)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        sandbox.admin.calls().await.unwrap(),
        calls_before,
        "not logged"
    );

    let missing = sandbox.admin.consent("bc_missing").await.unwrap_err();
    assert_eq!(
        (missing.status(), missing.code()),
        (Some(404), Some("resource_missing"))
    );
    let unreachable = finexer_sandbox::client::Admin::new("http://127.0.0.1:9")
        .health()
        .await
        .unwrap_err();
    assert!(
        matches!(
            unreachable,
            finexer_sandbox::client::AdminError::Unreachable(_)
        ),
        "{unreachable}"
    );
}

#[tokio::test]
async fn concurrent_api_requests_are_counted_at_their_peak() {
    let sandbox = TestSandbox::start().await;
    let idle = sandbox.admin.concurrency().await.unwrap();
    assert_eq!((idle.in_flight, idle.peak), (0, 0));
    // Six slow requests at once (an injected delay), then two one by one.
    let slow: finexer_sandbox::FaultRule = serde_json::from_value(serde_json::json!({
        "method": "GET", "path_prefix": "/consents", "latency_ms": 300, "count": 6
    }))
    .unwrap();
    sandbox.admin.set_faults(&[slow]).await.unwrap();
    let get = || sandbox.get("/consents/bc_missing");
    let (a, b, c, d, e, f) = tokio::join!(get(), get(), get(), get(), get(), get());
    assert!([a, b, c, d, e, f].iter().all(|r| r.status() == 404));
    sandbox.get("/consents/bc_missing").await;
    sandbox.get("/consents/bc_missing").await;
    let seen = sandbox.admin.concurrency().await.unwrap();
    assert_eq!(
        (seen.in_flight, seen.peak),
        (0, 6),
        "admin calls are not counted"
    );

    sandbox.admin.clear_requests().await.unwrap();
    sandbox.get("/consents/bc_missing").await;
    assert_eq!(sandbox.admin.concurrency().await.unwrap().peak, 1);
}
