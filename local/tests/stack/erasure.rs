//! Erasing one user's data, as an operator runs it: the `erase-user` binary
//! against the local stack's table, secret and sandbox.

use std::process::Command;

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::StatusCode;

use crate::support::*;

/// Every item of the table, as text, to look for a user in any attribute.
async fn table_text(stack: &Stack) -> Vec<String> {
    let aws = shared::net::aws_config_loader(std::time::Duration::from_secs(10))
        .unwrap()
        .load()
        .await;
    let items = aws_sdk_dynamodb::Client::new(&aws)
        .scan()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    items
        .iter()
        .map(|item| {
            let mut fields: Vec<String> = item
                .iter()
                .map(|(name, value)| match value {
                    AttributeValue::S(text) => format!("{name}={text}"),
                    other => format!("{name}={other:?}"),
                })
                .collect();
            fields.sort();
            fields.join(" ")
        })
        .collect()
}

/// Runs the binary off the test's runtime, which keeps serving the stack.
async fn erase_user(stack: &Stack, user: &str) -> std::process::Output {
    let config = &stack._running.state.app.config;
    let frontends: Vec<&str> = config.frontend_urls.iter().map(|u| u.as_str()).collect();
    let mut command = Command::new(env!("CARGO_BIN_EXE_erase-user"));
    command
        .args(["--user", user])
        .env("CONSENT_TABLE", &stack.table)
        // It revokes at Finexer: the API key is the only secret it reads.
        .env(
            "FINEXER_API_KEY_SECRET_ID",
            config.secret_ids.finexer_api_key.as_deref().unwrap(),
        )
        .env("CALLBACK_URL", config.callback_url.as_str())
        .env("FRONTEND_URLS", frontends.join(","))
        .env("FINEXER_BASE_URL", &stack.finexer.url)
        .env("STORE_TIMEOUT_MS", "10000");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn erasing_a_user_revokes_at_finexer_then_leaves_nothing_of_them() {
    let stack = Stack::start().await;
    let erin = stack.token("erin").await;
    let bob = stack.token("bob").await;
    let confirmed = stack.confirmed_link(&erin).await;
    let (pending, _) = stack.link(&erin).await;
    let bobs = stack.confirmed_link(&bob).await;
    assert!(
        table_text(&stack)
            .await
            .iter()
            .any(|item| item.contains("erin")),
        "the test looks for something that is there"
    );

    // Finexer down: nothing is deleted, and the run says so.
    stack.finexer.cut().await;
    let failed = erase_user(&stack, "erin").await;
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("nothing of this user was deleted"));
    for id in [&confirmed, &pending] {
        let (status, _) = stack.api(&erin, "GET", &format!("/consents/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{id} is still there");
    }
    stack.finexer.restore();

    let output = erase_user(&stack, "erin").await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["erased"]["consents"], 2, "{report}");

    for id in [&confirmed, &pending] {
        assert_eq!(stack.finexer_status(id).await, "canceled", "{id}");
        let (status, _) = stack.api(&erin, "GET", &format!("/consents/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let left = table_text(&stack).await;
    assert!(
        left.iter().all(|item| !item.contains("erin")
            && !item.contains(confirmed.as_str())
            && !item.contains(pending.as_str())),
        "{left:#?}"
    );
    // Another user is untouched.
    assert_eq!(
        stack.consent(&bob, &bobs).await.status,
        ConsentStatus::Authorized
    );
    assert_eq!(stack.finexer_status(&bobs).await, "authorized");

    // Again: nothing left to do, and it says so.
    let again = erase_user(&stack, "erin").await;
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["erased"]["consents"], 0);
}

#[test]
fn erase_user_needs_a_user() {
    let output = Command::new(env!("CARGO_BIN_EXE_erase-user"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage: erase-user --user"));
}
