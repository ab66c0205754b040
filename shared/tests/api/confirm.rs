//! The owner's confirmation: the one-time code from the callback, accepted
//! only with the link owner's own sign-in.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use crate::support::*;

/// Moves a consent's confirmation window into the past, as time would.
async fn lapse_confirmation(env: &TestEnv, consent_id: &str) {
    env.dynamo
        .update_item()
        .table_name(&env.table)
        .key("pk", AttributeValue::S(format!("CONSENT#{consent_id}")))
        .key("sk", AttributeValue::S("CONSENT".into()))
        .update_expression("SET confirm_by = :past")
        .expression_attribute_values(
            ":past",
            AttributeValue::S("2020-01-01T00:00:00.000000Z".into()),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_valid_code_in_another_users_session_revokes_the_consent() {
    let env = TestEnv::start().await;
    // The attacker's link, completed in the victim's browser.
    let (consent_id, state) = env.link("attacker").await;
    let code = env.approve(&consent_id, &state).await;

    let (status, problem) = env.confirm("victim", &consent_id, &code).await;
    assert_eq!(status, 404, "answered as an unknown consent: {problem}");
    assert!(
        env.finexer_calls()
            .await
            .contains(&format!("POST /consents/{consent_id}/revoke")),
        "revoked at Finexer"
    );
    let record = env.view("attacker", &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(
        record.revoke_reason.as_deref(),
        Some("confirmed_by_another_user")
    );
    assert!(record.confirmed_at.is_none());

    // The code is spent, and nobody sees the accounts.
    let (status, _) = env.confirm("attacker", &consent_id, &code).await;
    assert_eq!(status, 409);
    for user in ["attacker", "victim"] {
        let (_, all) = env.consents(user, "/accounts").await;
        assert_eq!(all["data"], json!([]), "{user}");
    }
    let (status, _) = env
        .consents("attacker", &format!("/consents/{consent_id}/accounts"))
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn without_the_code_nothing_is_confirmed() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("owner").await;
    let code = env.approve(&consent_id, &state).await;
    let before = env.item(&format!("CONSENT#{consent_id}"), "CONSENT").await;

    let other_code = "B".repeat(43);
    let bad = [
        ("owner", json!({"code": other_code}), 400),
        ("owner", json!({"code": "short"}), 400),
        ("owner", json!({"code": 43}), 400),
        ("owner", json!({}), 400),
        ("owner", json!({"code": code, "extra": 1}), 400),
        // A stranger with a wrong code learns nothing and changes nothing.
        ("stranger", json!({"code": other_code}), 404),
    ];
    for (user, body, expected) in bad {
        let response = shared::handlers::confirm(
            &env.app,
            request(
                "POST",
                &format!("/consents/{consent_id}/confirm"),
                "",
                Some(&body.to_string()),
                Some(user),
            ),
        )
        .await;
        let (status, problem) = json_of(response);
        assert_eq!(status, expected, "{user} {body}: {problem}");
    }
    let (status, _) = env.confirm("owner", "bc_unknown", &code).await;
    assert_eq!(status, 404);
    assert_eq!(
        env.item(&format!("CONSENT#{consent_id}"), "CONSENT").await,
        before,
        "nothing changed"
    );
    assert!(
        !env.finexer_calls()
            .await
            .iter()
            .any(|c| c.ends_with("/revoke")),
        "nothing revoked"
    );

    // Confirmed, a different code is refused and the right one repeats.
    let (status, _) = env.confirm("owner", &consent_id, &code).await;
    assert_eq!(status, 200);
    let (status, _) = env.confirm("owner", &consent_id, &other_code).await;
    assert_eq!(status, 409);
    // A stranger with the used code gets 404 and revokes nothing.
    let (status, _) = env.confirm("stranger", &consent_id, &code).await;
    assert_eq!(status, 404);
    let record = env.view("owner", &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Authorized);
}

#[tokio::test]
async fn an_unconfirmed_consent_is_revoked_once_its_window_passes() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("slow").await;
    let code = env.approve(&consent_id, &state).await;
    lapse_confirmation(&env, &consent_id).await;

    let (status, problem) = env.confirm("slow", &consent_id, &code).await;
    assert_eq!(status, 409, "{problem}");
    let record = env.view("slow", &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(record.revoke_reason.as_deref(), Some("unconfirmed"));
    assert!(
        env.finexer_calls()
            .await
            .contains(&format!("POST /consents/{consent_id}/revoke"))
    );
}

#[tokio::test]
async fn reading_a_lapsed_unconfirmed_consent_revokes_it() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("idle").await;
    env.approve(&consent_id, &state).await;
    let confirmed = env.confirmed_link("idle").await;
    lapse_confirmation(&env, &consent_id).await;
    lapse_confirmation(&env, &confirmed).await;

    let (status, list) = env.consents("idle", "/consents").await;
    assert_eq!(status, 200);
    let status_of = |id: &str| {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["consent_id"] == id)
            .map(|c| c["status"].clone())
    };
    assert_eq!(status_of(&consent_id), Some(json!("canceled")));
    assert_eq!(
        status_of(&confirmed),
        Some(json!("authorized")),
        "a confirmed consent has no window to miss"
    );
}
