//! Concurrency against the real stack: one state used by many at once, many
//! journeys at once, and a revoke racing the callback.

use std::collections::HashMap;

use futures::future::join_all;

use crate::support::*;

#[tokio::test]
async fn fifty_callbacks_with_one_state_apply_it_once() {
    // Production's timeout: fifty callbacks at once on two cores are slow,
    // and this test is about the state's single use, not about timeouts.
    let stack = Stack::with(&[("FINEXER_TIMEOUT_MS", "5000")]).await;
    let token = stack.token("erin").await;
    let (consent_id, _) = stack.link(&token).await;
    let callback = stack.decide(&consent_id, Decision::Approve).await;
    let responses = join_all((0..50).map(|_| stack.get(&callback))).await;
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for response in &responses {
        *statuses.entry(response.status().as_u16()).or_default() += 1;
        if response.status() == 303 {
            let back = response.headers()["location"].to_str().unwrap();
            assert_eq!(query_of(back)["status"], "authorized");
        }
    }
    assert!(
        statuses.keys().all(|s| *s == 303 || *s == 400),
        "only redirects and error pages: {statuses:?}"
    );
    let record = stack.consent(&token, &consent_id).await;
    assert_eq!(
        changes_by(&record, ChangeSource::Callback),
        1,
        "exactly one callback processed the state"
    );
}

async fn journey(stack: &Stack, token: &str) -> String {
    let (consent_id, _) = stack.link(token).await;
    let callback = stack.decide(&consent_id, Decision::Approve).await;
    let response = stack.get(&callback).await;
    assert_eq!(response.status(), 303);
    consent_id
}

#[tokio::test]
async fn two_hundred_journeys_in_parallel() {
    let _flood = flood().await;
    // Production's timeout: 200 journeys at once on two cores are slow.
    let stack = &Stack::with(&[("FINEXER_TIMEOUT_MS", "5000")]).await;
    let users: Vec<(String, String)> = join_all((0..50).map(|i| async move {
        let user = format!("parallel-{i}");
        let token = stack.token(&user).await;
        (user, token)
    }))
    .await;
    // Four journeys per user, all 200 at once: first links race to create
    // each user's customer.
    let journeys = users
        .iter()
        .flat_map(|(_, token)| (0..4).map(move |_| journey(stack, token)));
    let consent_ids = join_all(journeys).await;
    assert_eq!(consent_ids.len(), 200);

    for (user, token) in &users {
        let consents: Vec<ConsentView> = stack.list(token, "/consents").await;
        assert_eq!(consents.len(), 4, "{user}");
        assert!(
            consents
                .iter()
                .all(|c| c.status == ConsentStatus::Authorized),
            "{user}"
        );
    }
    let customers_created = stack
        .finexer_calls()
        .await
        .iter()
        .filter(|c| *c == "POST /customers")
        .count();
    assert_eq!(customers_created, 50, "one Finexer customer per user");
}

#[tokio::test]
async fn revoke_racing_the_callback_ends_consistent() {
    let stack = Stack::start().await;
    let token = stack.token("fred").await;
    for _ in 0..10 {
        let (consent_id, _) = stack.link(&token).await;
        let callback = stack.decide(&consent_id, Decision::Approve).await;
        let revoke_path = format!("/consents/{consent_id}/revoke");
        let (callback_response, (revoke_status, _)) = tokio::join!(
            stack.get(&callback),
            stack.api(&token, "POST", &revoke_path)
        );
        assert!(
            [303, 400].contains(&callback_response.status().as_u16()),
            "{}",
            callback_response.status()
        );
        assert_eq!(revoke_status, 200);
        let record = stack.consent(&token, &consent_id).await;
        assert_eq!(record.status, ConsentStatus::Canceled);
        assert!(record.revoked_at.is_some());
        assert_eq!(stack.finexer_status(&consent_id).await, "canceled");
        // The history is one unbroken chain.
        let history = &record.history;
        for pair in history.windows(2) {
            assert_eq!(pair[1].from.as_ref(), Some(&pair[0].to));
        }
        assert_eq!(history.last().unwrap().to, ConsentStatus::Canceled);
    }
}
