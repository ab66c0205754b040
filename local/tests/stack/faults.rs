//! Finexer failing on each call each function makes (500, 429 with
//! Retry-After, answers slower than our timeout, connection refused): the
//! caller gets a clear 503 with Retry-After, nothing is half-written, and a
//! retry succeeds once the fault clears.

use serde_json::{Value, json};

use crate::support::*;

#[derive(Clone, Copy, Debug)]
enum Fault {
    ServerError,
    Throttled,
    TooSlow,
    Refused,
}

const FAULTS: [Fault; 4] = [
    Fault::ServerError,
    Fault::Throttled,
    Fault::TooSlow,
    Fault::Refused,
];

impl Fault {
    async fn apply(self, stack: &Stack, method: &str, path_prefix: &str) {
        let rule = |extra: Value| {
            let mut rule = json!({"method": method, "path_prefix": path_prefix});
            rule.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            rule
        };
        match self {
            Fault::ServerError => stack.fault(rule(json!({"status": 500}))).await,
            Fault::Throttled => {
                stack
                    .fault(rule(json!({"status": 429, "retry_after": 30})))
                    .await
            }
            Fault::TooSlow => stack.fault(rule(json!({"latency_ms": 1500}))).await,
            Fault::Refused => stack.finexer.cut().await,
        }
    }

    async fn clear(self, stack: &Stack) {
        stack.clear_faults().await;
        stack.finexer.restore();
    }

    fn retry_after(self) -> &'static str {
        match self {
            Fault::Throttled => "30",
            _ => "2",
        }
    }
}

fn assert_retry_after(response: &reqwest::Response, fault: Fault) {
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some(fault.retry_after()),
        "{fault:?}"
    );
}

#[tokio::test]
async fn create_link_when_finexer_fails() {
    let stack = Stack::start().await;
    for (i, fault) in FAULTS.into_iter().enumerate() {
        // A new user's first link calls POST /customers, then POST /consents.
        for (step, prefix) in ["/customers", "/consents"].into_iter().enumerate() {
            let user = format!("user-{i}-{step}");
            let token = stack.token(&user).await;
            if step == 1 {
                // The customer exists already: only the consent create fails.
                stack.link(&token).await;
            }
            fault.apply(&stack, "POST", prefix).await;
            let response = stack.create_link(&token, json!({})).await;
            assert_retry_after(&response, fault);
            let body = problem(response, 503).await;
            assert_eq!(
                body.kind, "/problems/upstream-unavailable",
                "{fault:?} {prefix}"
            );
            assert_eq!(
                stack.list::<ConsentView>(&token, "/consents").await.len(),
                step,
                "{fault:?} {prefix}: no record for the failed link"
            );
            fault.clear(&stack).await;
            let retry = stack.create_link(&token, json!({})).await;
            assert_eq!(retry.status(), 201, "{fault:?} {prefix}: retry succeeds");
        }
    }
    // One customer per user, however often its creation failed.
    let customers = stack
        .finexer_calls()
        .await
        .into_iter()
        .filter(|c| c == "POST /customers")
        .count();
    assert!(
        customers <= 8 + 4,
        "at most one success per user plus failed tries"
    );
}

#[tokio::test]
async fn callback_when_finexer_fails() {
    let stack = Stack::start().await;
    let token = stack.token("alice").await;
    for fault in FAULTS {
        let (consent_id, _) = stack.link(&token).await;
        let callback = stack.decide(&consent_id, Decision::Approve).await;
        fault.apply(&stack, "GET", "/consents/").await;
        let response = stack.get(&callback).await;
        assert_eq!(response.status(), 503, "{fault:?}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(response.headers().get("location").is_none());
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(
            stack.consent(&token, &consent_id).await.status,
            ConsentStatus::Pending
        );
        fault.clear(&stack).await;
        let retry = stack.get(&callback).await;
        assert_eq!(
            retry.status(),
            303,
            "{fault:?}: the unused state still works"
        );
        let back = retry.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(query_of(&back)["status"], "authorized");
    }
}

#[tokio::test]
async fn revoke_when_finexer_fails() {
    let stack = Stack::start().await;
    let token = stack.token("bob").await;
    for fault in FAULTS {
        let (consent_id, _) = stack.link(&token).await;
        let callback = stack.decide(&consent_id, Decision::Approve).await;
        assert_eq!(stack.get(&callback).await.status(), 303);
        fault.apply(&stack, "POST", "/consents/").await;
        let response = stack
            .http
            .post(format!("{}/consents/{consent_id}/revoke", stack.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_retry_after(&response, fault);
        problem(response, 503).await;
        let record = stack.consent(&token, &consent_id).await;
        assert_eq!(
            record.status,
            ConsentStatus::RevokePending,
            "{fault:?}: the request is kept"
        );
        assert!(
            record.revoked_at.is_none(),
            "{fault:?}: no revocation claimed"
        );
        fault.clear(&stack).await;
        let (status, record) = stack
            .api(&token, "POST", &format!("/consents/{consent_id}/revoke"))
            .await;
        assert_eq!(status, 200, "{fault:?}: {record}");
        let record: ConsentView = serde_json::from_value(record).expect("a ConsentView");
        assert_eq!(record.status, ConsentStatus::Canceled);
        assert_eq!(stack.finexer_status(&consent_id).await, "canceled");
    }
}

#[tokio::test]
async fn account_reads_when_finexer_fails() {
    let stack = Stack::start().await;
    let token = stack.token("carol").await;
    let consent_id = stack.confirmed_link(&token).await;
    for fault in FAULTS {
        for path in [
            format!("/consents/{consent_id}/accounts"),
            "/accounts".into(),
        ] {
            fault.apply(&stack, "GET", "/bank_accounts").await;
            let response = stack
                .http
                .get(format!("{}{path}", stack.base))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_retry_after(&response, fault);
            problem(response, 503).await;
            fault.clear(&stack).await;
            let accounts: Vec<Value> = stack.list(&token, &path).await;
            assert!(!accounts.is_empty(), "{fault:?} {path}");
        }
    }
}
