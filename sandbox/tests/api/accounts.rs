//! Bank accounts: identity required, only for authorized consents, deterministic, delayed.

use std::time::Duration;

use finexer_sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestSandbox, error_code};

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
}

#[tokio::test]
async fn the_same_consent_always_shows_the_same_data() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.authorized_consent(&[]).await;
    let first = accounts_of(&sandbox, &consent).await;
    let second = accounts_of(&sandbox, &consent).await;
    assert_eq!(first, second);
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
