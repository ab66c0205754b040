//! Bank accounts: identity required, only for authorized consents, deterministic, sync limit.

use std::time::Duration;

use finexer_sandbox::SandboxConfig;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::Value;

use crate::helpers::{TestSandbox, error_code, json_of};

async fn accounts_of(sandbox: &TestSandbox, consent: &Value) -> Value {
    let path = format!(
        "/bank_accounts?customer={}&consent={}",
        consent["customer"].as_str().unwrap(),
        consent["id"].as_str().unwrap()
    );
    let (status, body) = sandbox.get_json(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn listing_accounts_without_a_customer_is_missing_identity() {
    let sandbox = TestSandbox::start().await;
    let (status, body) = sandbox.get_json("/bank_accounts?consent=bc_123").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "missing_identity");
}

#[tokio::test]
async fn accounts_exist_only_for_authorized_consents() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.pending_consent(&[]).await;
    assert_eq!(accounts_of(&sandbox, &consent).await["count"], 0);

    sandbox.approve(&consent, "sandbox-hsbc").await;
    let listed = accounts_of(&sandbox, &consent).await;
    let accounts = listed["data"].as_array().unwrap();
    assert!((1..=3).contains(&accounts.len()), "{listed}");
    for account in accounts {
        assert!(account["id"].as_str().unwrap().starts_with("ba_"));
        assert_eq!(account["object"], "bank_account");
        assert_eq!(account["currency"], "GBP");
        assert_eq!(account["provider"], "sandbox-hsbc");
        assert_eq!(account["consent"], consent["id"]);
        assert_eq!(account["customer"], consent["customer"]);
        assert_eq!(account["holder_name"], "Ada Lovelace");
        for field in [
            "created_at",
            "nickname",
            "type",
            "class",
            "fingerprint",
            "metadata",
        ] {
            assert!(!account[field].is_null(), "{field} in {account}");
        }
        let identification = &account["identification"];
        for field in ["sort_code", "account_number", "iban", "pan"] {
            assert!(identification.get(field).is_some(), "{field} in {account}");
        }
    }
    // The first account is a current account with UK identification.
    let first = &accounts[0]["identification"];
    assert_eq!(first["sort_code"].as_str().unwrap().len(), 6);
    assert_eq!(first["account_number"].as_str().unwrap().len(), 8);
    assert!(first["iban"].as_str().unwrap().starts_with("GB"));

    // All of the customer's accounts without naming the consent.
    let customer = consent["customer"].as_str().unwrap();
    let (_, by_customer) = sandbox
        .get_json(&format!("/bank_accounts?customer={customer}"))
        .await;
    assert_eq!(by_customer["data"], listed["data"]);

    // Revoking withdraws access.
    let id = consent["id"].as_str().unwrap();
    sandbox
        .post_json_answer(&format!("/consents/{id}/revoke"), &[])
        .await;
    assert_eq!(accounts_of(&sandbox, &consent).await["count"], 0);
    let account_id = accounts[0]["id"].as_str().unwrap();
    let (status, _) = sandbox
        .get_json(&format!("/bank_accounts/{account_id}/balance"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_same_consent_always_shows_the_same_data() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.authorized_consent(&[]).await;
    let first = accounts_of(&sandbox, &consent).await;
    let second = accounts_of(&sandbox, &consent).await;
    assert_eq!(first, second);

    let account_id = first["data"][0]["id"].as_str().unwrap();
    let balance_path = format!("/bank_accounts/{account_id}/balance");
    let (status, balance) = sandbox.get_json(&balance_path).await;
    assert_eq!(status, StatusCode::OK, "{balance}");
    assert_eq!(balance["bank_account"], account_id);
    assert!(balance["current"].is_i64() && balance["available"].is_i64());
    assert_eq!(sandbox.get_json(&balance_path).await.1, balance);

    let transactions_path = format!("/bank_accounts/{account_id}/transactions?limit=100");
    let (status, transactions) = sandbox.get_json(&transactions_path).await;
    assert_eq!(status, StatusCode::OK, "{transactions}");
    assert!(transactions["paging"]["total"].as_u64().unwrap() >= 25);
    assert_eq!(sandbox.get_json(&transactions_path).await.1, transactions);
}

#[tokio::test]
async fn transactions_filter_by_status_and_time_and_page() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.authorized_consent(&[]).await;
    let accounts = accounts_of(&sandbox, &consent).await;
    let account_id = accounts["data"][0]["id"].as_str().unwrap();
    let path = format!("/bank_accounts/{account_id}/transactions");

    let (_, all) = sandbox.get_json(&format!("{path}?limit=100")).await;
    let all = all["data"].as_array().unwrap().clone();
    let timestamps: Vec<&str> = all
        .iter()
        .map(|t| t["timestamp"].as_str().unwrap())
        .collect();
    assert!(
        timestamps.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first"
    );

    let (_, pending) = sandbox.get_json(&format!("{path}?status=pending")).await;
    assert!(
        pending["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "pending")
    );
    assert_eq!(pending["count"], 2);

    let middle = timestamps[timestamps.len() / 2];
    let (_, recent) = sandbox
        .get_json(&format!("{path}?timestamp.gte={middle}&limit=100"))
        .await;
    let recent = recent["data"].as_array().unwrap();
    assert!(!recent.is_empty() && recent.len() < all.len());
    assert!(
        recent
            .iter()
            .all(|t| t["timestamp"].as_str().unwrap() >= middle)
    );
    let (_, older) = sandbox
        .get_json(&format!("{path}?timestamp.lte={middle}&limit=100"))
        .await;
    assert!(
        older["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["timestamp"].as_str().unwrap() <= middle)
    );

    let (_, page) = sandbox.get_json(&format!("{path}?limit=3&offset=3")).await;
    assert_eq!(page["data"][0], all[3]);

    let (status, body) = sandbox
        .get_json(&format!("{path}?timestamp.gte=yesterday"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "parameter_invalid");
}

#[tokio::test]
async fn scopes_limit_what_can_be_read() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox
        .authorized_consent(&[("scopes[]", "accounts")])
        .await;
    let accounts = accounts_of(&sandbox, &consent).await;
    let account_id = accounts["data"][0]["id"].as_str().unwrap();
    let (status, body) = sandbox
        .get_json(&format!("/bank_accounts/{account_id}/balance"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body, "request_error"), "insufficient_scope");
}

#[tokio::test]
async fn a_second_sync_within_the_hour_is_429_with_retry_after() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.authorized_consent(&[]).await;
    let accounts = accounts_of(&sandbox, &consent).await;
    let account_id = accounts["data"][0]["id"].as_str().unwrap();
    let path = format!("/bank_accounts/{account_id}/sync");

    let (status, synced) = sandbox.post_json_answer(&path, &[]).await;
    assert_eq!(status, StatusCode::OK, "{synced}");
    assert_eq!(synced["id"], account_id);

    let response = sandbox.get(&path).await;
    let retry_after: u64 = response.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry_after), "{retry_after}");
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&body, "request_error"), "sync_limit_exceeded");

    // The limit is per account.
    if let Some(other) = accounts["data"][1]["id"].as_str() {
        let (status, _) = sandbox
            .post_json_answer(&format!("/bank_accounts/{other}/sync"), &[])
            .await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn accounts_delay_hides_accounts_briefly_after_authorization() {
    let sandbox = TestSandbox::with(SandboxConfig {
        accounts_delay_ms: 400,
        ..SandboxConfig::default()
    })
    .await;
    let consent = sandbox.authorized_consent(&[]).await;
    assert_eq!(
        accounts_of(&sandbox, &consent).await["count"],
        0,
        "hidden at first"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        accounts_of(&sandbox, &consent).await["count"]
            .as_u64()
            .unwrap()
            >= 1
    );
}
