//! Consents: statuses, fields, update, revoke, unknown ids.

use finexer_sandbox::admin::ForcedStatus;
use finexer_sandbox::model::ConsentStatus;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestSandbox, error_code};

fn is_utc_timestamp(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| text.len() == 20 && text.ends_with('Z') && text.as_bytes()[10] == b'T')
}

#[tokio::test]
async fn a_consent_without_customer_is_new_and_has_every_documented_field() {
    let sandbox = TestSandbox::start().await;
    let (status, consent) = sandbox
        .post_json_answer("/consents", &[("return_url", "https://app.example/cb")])
        .await;
    assert_eq!(status, StatusCode::OK, "{consent}");
    assert_eq!(consent["status"], "new");
    assert_eq!(consent["object"], "consent");
    let id = consent["id"].as_str().unwrap();
    assert!(id.starts_with("bc_") && id.len() == 19, "{id}");
    for field in [
        "created_at",
        "updated_at",
        "renewed_at",
        "provider",
        "customer",
        "consent_link",
        "failure_code",
        "failure_message",
        "expiry_date",
        "retro_date",
        "scopes",
        "authed_at",
        "status",
        "redirect",
        "metadata",
    ] {
        assert!(consent.get(field).is_some(), "missing {field}: {consent}");
    }
    assert!(is_utc_timestamp(&consent["created_at"]), "{consent}");
    assert!(consent["authed_at"].is_null());
    assert!(consent["customer"].is_null());
    assert_eq!(
        consent["scopes"],
        serde_json::json!(["accounts", "balance", "transactions"])
    );
    let consent_url = consent["redirect"]["consent_url"].as_str().unwrap();
    assert_eq!(
        consent_url,
        format!("{}/connect/{id}", sandbox.sandbox.base_url())
    );
    assert_eq!(consent["consent_link"], consent_url);
    assert_eq!(consent["redirect"]["return_url"], "https://app.example/cb");
}

#[tokio::test]
async fn a_consent_with_customer_is_pending_and_fetchable() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox
        .pending_consent(&[("provider", "sandbox-monzo")])
        .await;
    assert_eq!(consent["provider"], "sandbox-monzo");
    let id = consent["id"].as_str().unwrap();
    let (status, fetched) = sandbox.get_json(&format!("/consents/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, consent);
}

#[tokio::test]
async fn creation_checks_its_references() {
    let sandbox = TestSandbox::start().await;
    let (status, body) = sandbox
        .post_json_answer("/consents", &[("customer", "cus_missing")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "resource_missing");

    let (status, body) = sandbox
        .post_json_answer("/consents", &[("provider", "sandbox-nowhere")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "parameter_invalid");

    let (status, body) = sandbox
        .post_json_answer("/consents", &[("return_url", "not a url")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "parameter_invalid");

    let (status, body) = sandbox
        .post_json_answer("/consents", &[("retro_date", "31/01/2024")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "parameter_invalid");
}

#[tokio::test]
async fn updating_a_new_consent_with_a_customer_makes_it_pending() {
    let sandbox = TestSandbox::start().await;
    let (_, consent) = sandbox
        .post_json_answer("/consents", &[("metadata[a]", "1")])
        .await;
    let id = consent["id"].as_str().unwrap();
    assert_eq!(consent["status"], "new");
    let customer = sandbox.create_customer().await;

    let (status, updated) = sandbox
        .post_json_answer(
            &format!("/consents/{id}"),
            &[
                ("customer", customer.as_str()),
                ("metadata[b]", "2"),
                ("metadata[a]", ""),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["status"], "pending");
    assert_eq!(updated["customer"], customer.as_str());
    assert_eq!(updated["metadata"], serde_json::json!({"b": "2"}));

    let (_, fetched) = sandbox.get_json(&format!("/consents/{id}")).await;
    assert_eq!(fetched["status"], "pending");
}

#[tokio::test]
async fn renewing_an_authorized_consent_records_renewed_at_and_extends_expiry() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.authorized_consent(&[]).await;
    let id = consent["id"].as_str().unwrap();
    let (status, renewed) = sandbox
        .post_json_answer(
            &format!("/consents/{id}"),
            &[("renewed_at", "2030-01-01T00:00:00Z")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["renewed_at"], "2030-01-01T00:00:00Z");
    assert_eq!(renewed["expiry_date"], "2030-04-01T00:00:00Z");
    assert_eq!(renewed["status"], "authorized");
}

#[tokio::test]
async fn revoke_answers_the_consent_as_canceled() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.authorized_consent(&[]).await;
    let id = consent["id"].as_str().unwrap();
    let (status, revoked) = sandbox
        .post_json_answer(&format!("/consents/{id}/revoke"), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["status"], "canceled");
    assert_eq!(revoked["id"], id);
    let (_, fetched) = sandbox.get_json(&format!("/consents/{id}")).await;
    assert_eq!(fetched["status"], "canceled");

    // Revoking again is harmless; changing a canceled consent is not allowed.
    let (status, again) = sandbox
        .post_json_answer(&format!("/consents/{id}/revoke"), &[])
        .await;
    assert_eq!(
        (status, again["status"].as_str()),
        (StatusCode::OK, Some("canceled"))
    );
    let (status, body) = sandbox
        .post_json_answer(&format!("/consents/{id}"), &[("renewed_at", "2030-01-01")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "consent_inactive");
}

#[tokio::test]
async fn unknown_ids_are_404_in_the_error_shape() {
    let sandbox = TestSandbox::start().await;
    for (status, body) in [
        sandbox.get_json("/consents/bc_doesnotexist").await,
        sandbox
            .post_json_answer("/consents/bc_doesnotexist", &[("metadata[a]", "b")])
            .await,
        sandbox
            .post_json_answer("/consents/bc_doesnotexist/revoke", &[])
            .await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(error_code(&body, "request_error"), "resource_missing");
    }
}

#[tokio::test]
async fn the_admin_shortcut_produces_statuses_a_person_cannot_click() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.pending_consent(&[]).await;
    let id = consent["id"].as_str().unwrap();
    let forced = sandbox
        .admin
        .force_status(
            id,
            &ForcedStatus {
                failure_code: Some("bank_unavailable".into()),
                ..ForcedStatus::new(ConsentStatus::Failed)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (forced.status, forced.failure_code.as_deref()),
        (ConsentStatus::Failed, Some("bank_unavailable"))
    );
    let (_, fetched) = sandbox.get_json(&format!("/consents/{id}")).await;
    assert_eq!(fetched["status"], "failed");
    assert_eq!(fetched["failure_code"], "bank_unavailable");
}

#[tokio::test]
async fn the_admin_shortcut_can_choose_the_bank_of_an_authorization() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.pending_consent(&[]).await;
    let id = consent["id"].as_str().unwrap();
    assert!(consent["provider"].is_null());
    let authorized = sandbox
        .admin
        .authorize_with(id, "sandbox-barclays")
        .await
        .unwrap();
    assert_eq!(authorized.status, ConsentStatus::Authorized);
    assert!(authorized.authed_at.is_some());
    let (_, fetched) = sandbox.get_json(&format!("/consents/{id}")).await;
    assert_eq!(fetched["provider"], "sandbox-barclays");
    assert_eq!(fetched["status"], "authorized");

    // A bank only comes with an authorization, and only a known one.
    let other = sandbox.pending_consent(&[]).await;
    let other = other["id"].as_str().unwrap();
    let unknown = sandbox.admin.authorize_with(other, "no-such-bank").await;
    assert_eq!(unknown.unwrap_err().code(), Some("parameter_invalid"));
    let with_failure = ForcedStatus {
        provider: Some("sandbox-barclays".into()),
        ..ForcedStatus::new(ConsentStatus::Failed)
    };
    let refused = sandbox.admin.force_status(other, &with_failure).await;
    assert_eq!(refused.unwrap_err().status(), Some(400));
    assert_eq!(
        sandbox.admin.consent(other).await.unwrap().status,
        ConsentStatus::Pending,
        "nothing changed"
    );
}

#[tokio::test]
async fn authorization_sets_a_90_day_expiry_and_only_authorized_consents_renew() {
    let sandbox = TestSandbox::start().await;
    let authorized = sandbox.authorized_consent(&[]).await;
    let authed_at = time::OffsetDateTime::parse(
        authorized["authed_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expected = (authed_at + time::Duration::days(90))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(authorized["expiry_date"], expected.as_str());
    assert!(authorized["renewed_at"].is_null());

    let pending = sandbox.pending_consent(&[]).await;
    let id = pending["id"].as_str().unwrap();
    let (status, body) = sandbox
        .post_json_answer(&format!("/consents/{id}"), &[("renewed_at", "2026-01-01")])
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body, "request_error"), "consent_not_authorized");
    let (_, fetched) = sandbox.get_json(&format!("/consents/{id}")).await;
    assert!(fetched["renewed_at"].is_null());
}

/// What a bank's display name comes from: the bank chosen on the consent
/// page is the consent's `provider`, the `id` of a listed provider whose
/// `name` the API shows as the consent's `bank_name`.
#[tokio::test]
async fn an_authorized_consents_provider_is_a_listed_provider_with_a_name() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.authorized_consent(&[]).await;
    assert_eq!(consent["provider"], "sandbox-lloyds");
    let (status, providers) = sandbox.get_json("/providers?roles[]=ais&limit=100").await;
    assert_eq!(status, StatusCode::OK);
    let chosen: Vec<&Value> = providers["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|p| p["id"] == consent["provider"])
        .collect();
    assert_eq!(chosen.len(), 1, "{providers}");
    assert_eq!(chosen[0]["name"], "Lloyds Bank (Sandbox)");
}
