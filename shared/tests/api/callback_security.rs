//! The callback under attack: every bad state is refused with an HTML page,
//! no redirect, and no record changed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::journey::state_id_of;
use crate::support::*;

async fn authorized_pending(env: &TestEnv, user: &str) -> (String, String) {
    let (consent_id, state) = env.link(user).await;
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;
    (consent_id, state)
}

async fn assert_untouched(env: &TestEnv, user: &str, consent_id: &str) {
    let record = env.view(user, consent_id).await;
    assert_eq!(record.status, ConsentStatus::Pending, "{record:?}");
    assert_eq!(record.history.len(), 1);
    let state_item = env
        .item(
            &format!("STATE#{}", state_id_of(env, consent_id).await),
            "STATE",
        )
        .await
        .unwrap();
    assert!(!state_item.contains_key("used_at"), "state still unused");
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sign(claims: &Value, kid: &str, key: &str, alg: Algorithm) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key.as_bytes())).unwrap()
}

#[tokio::test]
async fn forged_states_are_refused_without_changes() {
    let env = TestEnv::start().await;
    let (consent_id, state) = authorized_pending(&env, "alice").await;
    let claims = claims_of(&state);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    let mut expired = claims.clone();
    expired["iat"] = json!(now - 2000);
    expired["nbf"] = json!(now - 2000);
    expired["exp"] = json!(now - 1000);
    let mut future = claims.clone();
    future["nbf"] = json!(now + 600);
    let mut other_user = claims.clone();
    other_user["sub"] = json!("mallory");
    let mut other_jti = claims.clone();
    other_jti["jti"] = json!("0123456789abcdef0123456789abcdef");
    let header_none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"k-new"}"#);
    let payload = state.split('.').nth(1).unwrap();

    let forged = [
        ("garbage", "not-a-jwt".to_owned()),
        ("truncated", state[..state.len() - 4].to_owned()),
        ("alg none", format!("{header_none}.{payload}.")),
        (
            "another key",
            sign(
                &claims,
                "k-new",
                "attacker-key-attacker-key-attacker-key",
                Algorithm::HS256,
            ),
        ),
        (
            "unknown kid",
            sign(&claims, "k-evil", KEY_NEW, Algorithm::HS256),
        ),
        ("HS512", sign(&claims, "k-new", KEY_NEW, Algorithm::HS512)),
        (
            "expired",
            sign(&expired, "k-new", KEY_NEW, Algorithm::HS256),
        ),
        (
            "not yet valid",
            sign(&future, "k-new", KEY_NEW, Algorithm::HS256),
        ),
        (
            "other user",
            sign(&other_user, "k-new", KEY_NEW, Algorithm::HS256),
        ),
        (
            "other state id",
            sign(&other_jti, "k-new", KEY_NEW, Algorithm::HS256),
        ),
    ];
    for (what, token) in forged {
        let response = env
            .callback(&format!("fx_consent={consent_id}&state={token}"))
            .await;
        assert_eq!(html_error(&response), 400, "{what}");
    }
    let missing = env.callback(&format!("fx_consent={consent_id}")).await;
    assert_eq!(
        missing.status(),
        200,
        "missing state: the one stateless page"
    );
    assert_untouched(&env, "alice", &consent_id).await;

    // The genuine state still works afterwards.
    location(
        &env.callback(&format!("fx_consent={consent_id}&state={state}"))
            .await,
    );
}

#[tokio::test]
async fn a_state_is_bound_to_its_own_consent() {
    let env = TestEnv::start().await;
    let (first, first_state) = authorized_pending(&env, "alice").await;
    let (second, _) = authorized_pending(&env, "alice").await;
    let response = env
        .callback(&format!("fx_consent={second}&state={first_state}"))
        .await;
    assert_eq!(html_error(&response), 400);
    assert_untouched(&env, "alice", &second).await;
    assert_untouched(&env, "alice", &first).await;
}

#[tokio::test]
async fn a_state_signed_with_a_rotated_out_key_is_refused() {
    let env = TestEnv::start().await;
    let (consent_id, state) = authorized_pending(&env, "alice").await;
    let claims = claims_of(&state);
    // Signed by the old key, which the secret still lists: accepted.
    let old = sign(&claims, "k-old", KEY_OLD, Algorithm::HS256);
    // Rotate the old key out; a new process (fresh cache) must refuse it.
    env.secrets
        .put_secret_value()
        .secret_id(env.secret_ids.state_keys.as_deref().unwrap())
        .secret_string(state_keys_json(&[("k-new", KEY_NEW)]))
        .send()
        .await
        .unwrap();
    let fresh = TestEnv::start().await;
    let rotated_app = shared::App::new(
        env.app.config.clone(),
        env.app.store.clone(),
        std::sync::Arc::new(shared::secrets::SecretsManagerSource::new(
            fresh.secrets.clone(),
            env.secret_ids.clone(),
            std::time::Duration::from_secs(300),
        )),
    )
    .unwrap();
    let response = shared::handlers::callback(
        &rotated_app,
        request(
            "GET",
            "/callback",
            &format!("fx_consent={consent_id}&state={old}"),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(html_error(&response), 400);
    assert_untouched(&env, "alice", &consent_id).await;
}

#[tokio::test]
async fn a_state_signed_with_a_still_listed_old_key_works() {
    let env = TestEnv::start().await;
    let (consent_id, state) = authorized_pending(&env, "alice").await;
    let old = sign(&claims_of(&state), "k-old", KEY_OLD, Algorithm::HS256);
    let back = location(
        &env.callback(&format!("fx_consent={consent_id}&state={old}"))
            .await,
    );
    assert_eq!(query_of(&back)["status"], "authorized");
}

#[tokio::test]
async fn a_replayed_state_after_revocation_is_refused() {
    let env = TestEnv::start().await;
    let (consent_id, state) = authorized_pending(&env, "alice").await;
    let query = format!("fx_consent={consent_id}&state={state}");
    location(&env.callback(&query).await);
    let (status, _) = env.revoke("alice", &consent_id).await;
    assert_eq!(status, 200);
    let response = env.callback(&query).await;
    assert_eq!(html_error(&response), 400);
    let record = env.view("alice", &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(record.history.len(), 4);
}

#[tokio::test]
async fn concurrent_callbacks_with_one_state_apply_it_once() {
    let env = TestEnv::start().await;
    let (consent_id, state) = authorized_pending(&env, "alice").await;
    let query = format!("fx_consent={consent_id}&state={state}");
    let responses = futures::future::join_all((0..8).map(|_| env.callback(&query))).await;
    let mut redirects = 0;
    for response in &responses {
        if response.status() == 303 {
            redirects += 1;
            assert_eq!(query_of(&location(response))["status"], "authorized");
        } else {
            assert_eq!(html_error(response), 400);
        }
    }
    assert!(redirects >= 1);
    let record = env.view("alice", &consent_id).await;
    let callbacks = record
        .history
        .iter()
        .filter(|h| h.source == ChangeSource::Callback)
        .count();
    assert_eq!(callbacks, 1, "exactly one callback changed the record");
}

#[tokio::test]
async fn malformed_callback_queries_get_an_error_page() {
    let env = TestEnv::start().await;
    let long = "a".repeat(5000);
    for query in [
        String::new(),
        "state=abc".into(),
        "fx_consent=bc_1%0D%0ALocation:%20https://evil.example&state=x".into(),
        "fx_consent=bc_1&fx_consent=bc_2&state=x".into(),
        format!("fx_consent=bc_1&state={long}"),
        "fx_consent=%FF%FE&state=x".into(),
    ] {
        let response = env.callback(&query).await;
        let status = html_error(&response);
        assert!((400..500).contains(&status), "{query}: {status}");
    }
}

#[tokio::test]
async fn a_key_added_a_second_ago_is_accepted_at_once() {
    let env = TestEnv::start().await;
    // create-link has fetched and cached the secret.
    let (consent_id, state) = authorized_pending(&env, "alice").await;
    const KEY_FRESH: &str = "fresh-signing-key-fresh-signing-key-01";
    env.secrets
        .put_secret_value()
        .secret_id(env.secret_ids.state_keys.as_deref().unwrap())
        .secret_string(state_keys_json(&[
            ("k-fresh", KEY_FRESH),
            ("k-new", KEY_NEW),
        ]))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let fresh = sign(&claims_of(&state), "k-fresh", KEY_FRESH, Algorithm::HS256);
    let back = location(
        &env.callback(&format!("fx_consent={consent_id}&state={fresh}"))
            .await,
    );
    assert_eq!(query_of(&back)["status"], "authorized");
}

#[tokio::test]
async fn a_secrets_manager_blip_serves_the_last_good_secret() {
    use shared::secrets::SecretSource;
    let env = TestEnv::start().await;
    // A zero TTL: every call refreshes, so the blip is met at once.
    let source = shared::secrets::SecretsManagerSource::new(
        env.secrets.clone(),
        env.secret_ids.clone(),
        std::time::Duration::ZERO,
    );
    let first = source.state_keys().await.unwrap();
    env.secrets
        .delete_secret()
        .secret_id(env.secret_ids.state_keys.as_deref().unwrap())
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let during = source.state_keys().await.expect("the last good value");
    assert_eq!(during.signing_key().kid, first.signing_key().kid);
    // A process that never had a good value cannot make one up.
    let newcomer = shared::secrets::SecretsManagerSource::new(
        env.secrets.clone(),
        env.secret_ids.clone(),
        std::time::Duration::ZERO,
    );
    assert!(newcomer.state_keys().await.is_err());
    // Each secret is its own: the others are still read.
    assert!(newcomer.finexer_api_key().await.is_ok());
    assert!(newcomer.webhook_secrets().await.is_ok());
}

#[tokio::test]
async fn a_function_reads_only_the_secrets_it_is_configured_with() {
    use shared::secrets::{SecretIds, SecretSource};
    let env = TestEnv::start().await;
    // The webhook function's configuration: the API key and the webhook secrets.
    let webhook = shared::secrets::SecretsManagerSource::new(
        env.secrets.clone(),
        SecretIds {
            state_keys: None,
            ..env.secret_ids.clone()
        },
        std::time::Duration::from_secs(300),
    );
    assert!(webhook.finexer_api_key().await.is_ok());
    assert!(webhook.webhook_secrets().await.is_ok());
    let err = webhook.state_keys().await.err().expect("not configured");
    assert!(
        err.to_string().contains("STATE_KEYS_SECRET_ID is not set"),
        "{err}"
    );
    assert_eq!(err.status(), 500, "a deployment mistake, not the caller's");
}
