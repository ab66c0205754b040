//! DynamoDB unreachable mid-run, then back: clear 503s meanwhile, and
//! afterwards nothing lost or duplicated.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn an_outage_gives_clear_errors_and_loses_nothing() {
    let stack = Stack::start().await;
    let token = stack.token("dana").await;
    let (before_outage, _) = stack.link(&token).await;
    let callback = stack.decide(&before_outage, Decision::Approve).await;
    let finexer_calls_before = stack.finexer_calls().await.len();

    stack.dynamo.cut().await;

    let response = stack.create_link(&token, json!({})).await;
    assert!(response.headers().contains_key("retry-after"));
    let body = problem(response, 503).await;
    assert_eq!(body.kind, "/problems/store-unavailable");
    assert!(
        !body.detail.contains(&stack.table),
        "no internals in the answer"
    );
    for path in ["/consents", &format!("/consents/{before_outage}")] {
        let response = stack
            .http
            .get(format!("{}{path}", stack.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        problem(response, 503).await;
    }
    let response = stack
        .http
        .post(format!("{}/consents/{before_outage}/revoke", stack.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    problem(response, 503).await;
    let response = stack.get(&callback).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("location").is_none());
    // create-link may reach Finexer (this container knows the customer),
    // but a consent it cannot record is revoked at once: nothing is left
    // live at Finexer that our store does not know.
    let calls_during: Vec<String> = stack.finexer_calls().await[finexer_calls_before..].to_vec();
    let created = calls_during
        .iter()
        .filter(|c| *c == "POST /consents")
        .count();
    let revoked = calls_during
        .iter()
        .filter(|c| c.starts_with("POST /consents/") && c.ends_with("/revoke"))
        .count();
    assert_eq!(created, revoked, "{calls_during:?}");

    stack.dynamo.restore();

    // The journey that was interrupted completes; the store holds exactly
    // what was recorded before plus what happens now.
    let response = stack.get(&callback).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        stack.consent(&token, &before_outage).await.status,
        ConsentStatus::Authorized
    );
    let (after, _) = stack.link(&token).await;
    let list: Vec<ConsentView> = stack.list(&token, "/consents").await;
    let ids: Vec<&str> = list.iter().map(|c| c.consent_id.as_str()).collect();
    assert_eq!(ids, [after.as_str(), before_outage.as_str()]);
}
