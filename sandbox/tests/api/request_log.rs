//! `/_sandbox/requests`: what API calls arrived, for counting round trips.

use reqwest::StatusCode;

use crate::helpers::{TestSandbox, json_of};

#[tokio::test]
async fn api_requests_are_logged_with_status_and_body_and_can_be_cleared() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.pending_consent(&[("scopes[]", "balance")]).await;
    sandbox.get("/consents?status=pending").await;
    sandbox.get("/consents/bc_missing").await;
    // Pages and admin calls are not API round trips.
    sandbox.page(&sandbox.page_path(&consent)).await;
    sandbox
        .client
        .get(sandbox.url("/_sandbox/health"))
        .send()
        .await
        .unwrap();

    let (status, log) = json_of(
        sandbox
            .client
            .get(sandbox.url("/_sandbox/requests"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let entries = log["data"].as_array().unwrap();
    let summary: Vec<(String, String, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("POST".to_owned(), "/customers".to_owned(), 200),
            ("POST".to_owned(), "/consents".to_owned(), 200),
            ("GET".to_owned(), "/consents".to_owned(), 200),
            ("GET".to_owned(), "/consents/bc_missing".to_owned(), 404),
        ]
    );
    assert_eq!(log["count"], 4);
    assert_eq!(entries[2]["query"], "status=pending");
    assert!(
        entries[1]["body"]
            .as_str()
            .unwrap()
            .contains("scopes%5B%5D=balance")
    );
    assert!(entries[0]["timestamp"].as_str().unwrap().ends_with('Z'));

    let cleared = sandbox
        .client
        .delete(sandbox.url("/_sandbox/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    let (_, log) = json_of(
        sandbox
            .client
            .get(sandbox.url("/_sandbox/requests"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(log["count"], 0);
}
