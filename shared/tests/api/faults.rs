//! Finexer failing on each call each function makes: the caller gets a clear
//! 502/503, nothing is half-written, and a retry succeeds once it clears.

use std::sync::Arc;

use finexer_sandbox::{FaultRule, SandboxConfig};
use serde_json::json;

use crate::journey::state_id_of;
use crate::support::*;

#[tokio::test]
async fn create_link_survives_finexer_failures() {
    let env = TestEnv::start().await;
    for fault in [
        failing("POST", "/customers", 500),
        too_slow("POST", "/customers"),
        failing("POST", "/consents", 500),
        too_slow("POST", "/consents"),
    ] {
        let path = &fault.path_prefix;
        env.finexer_faults(std::slice::from_ref(&fault)).await;
        let (status, problem) = env.create_link("alice", json!({})).await;
        assert_eq!(status, 503, "{path}: {problem}");
        assert_eq!(problem["type"], "/problems/upstream-unavailable");
        let (_, list) = env.consents("alice", "/consents").await;
        assert_eq!(list["data"], json!([]), "{path}: no consent recorded");
        env.reset_faults().await;
    }
    // No lease left behind: the next call creates the customer at once.
    let (status, body) = env.create_link("alice", json!({})).await;
    assert_eq!(status, 201, "{body}");
    let customer = env.item("USER#alice", "CUSTOMER").await.unwrap();
    assert!(customer.contains_key("customer_id"));
}

#[tokio::test]
async fn creates_are_not_retried_after_a_server_error() {
    let env = TestEnv::start().await;
    env.finexer_faults(&[failing("POST", "/consents", 500)])
        .await;
    let (status, _) = env.create_link("bob", json!({})).await;
    assert_eq!(status, 503);
    let creates = env
        .finexer_calls()
        .await
        .iter()
        .filter(|c| *c == "POST /consents")
        .count();
    assert_eq!(creates, 1, "a 500 may have created it: no blind retry");
}

#[tokio::test]
async fn reads_are_retried_and_throttling_is_passed_on() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("carol").await;
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;
    // One 500, then fine: the read is retried inside the request.
    env.finexer_faults(&[FaultRule {
        count: Some(1),
        ..failing("GET", "/consents/", 500)
    }])
    .await;
    let back = location(
        &env.callback(&format!("fx_consent={consent_id}&state={state}"))
            .await,
    );
    assert_eq!(query_of(&back)["status"], "authorized");
    let code = fragment_code(&back).expect("the code");
    let (status, _) = env.confirm("carol", &consent_id, &code).await;
    assert_eq!(status, 200);

    // A long Retry-After is handed to our caller rather than waited out.
    let fired_once = env.admin.faults().await.unwrap();
    assert_eq!(fired_once[0].fired, 1, "the read failed once");
    env.finexer_faults(&[FaultRule {
        retry_after: Some(30),
        ..failing("GET", "/bank_accounts", 429)
    }])
    .await;
    let response = shared::handlers::consents(
        &env.app,
        request("GET", "/accounts", "", None, Some("carol")),
    )
    .await;
    assert_eq!(response.headers()["retry-after"], "30");
    let (status, _) = json_of(response);
    assert_eq!(status, 503);
}

#[tokio::test]
async fn callback_failure_leaves_the_state_usable_for_a_retry() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("dave").await;
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;
    let query = format!("fx_consent={consent_id}&state={state}");
    for fault in [
        failing("GET", "/consents/", 500),
        too_slow("GET", "/consents/"),
    ] {
        env.finexer_faults(&[fault]).await;
        let response = env.callback(&query).await;
        assert_eq!(html_error(&response), 503);
        assert!(response.headers().contains_key("retry-after"));
        let record = env.view("dave", &consent_id).await;
        assert_eq!(record.status, ConsentStatus::Pending);
        let state_item = env
            .item(
                &format!("STATE#{}", state_id_of(&env, &consent_id).await),
                "STATE",
            )
            .await
            .unwrap();
        assert!(!state_item.contains_key("used_at"));
        env.reset_faults().await;
    }
    let back = location(&env.callback(&query).await);
    assert_eq!(query_of(&back)["status"], "authorized");
}

#[tokio::test]
async fn a_failed_revocation_is_recorded_and_completed_by_a_retry() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("erin").await;
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;
    location(
        &env.callback(&format!("fx_consent={consent_id}&state={state}"))
            .await,
    );

    let revoke = format!("/consents/{consent_id}/revoke");
    for fault in [failing("POST", &revoke, 500), too_slow("POST", &revoke)] {
        env.finexer_faults(&[fault]).await;
        let (status, problem) = env.revoke("erin", &consent_id).await;
        assert_eq!(status, 503, "{problem}");
        let record = env.view("erin", &consent_id).await;
        assert_eq!(
            record.status,
            ConsentStatus::RevokePending,
            "the request is remembered"
        );
        assert!(record.revoked_at.is_none(), "no revocation claimed");
        assert!(record.revoke_requested_at.is_some());
        env.reset_faults().await;
    }
    let (status, record) = env.revoke("erin", &consent_id).await;
    assert_eq!(status, 200);
    let record: ConsentView = serde_json::from_value(record).unwrap();
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert!(record.revoked_at.is_some());
    assert_eq!(
        env.at_finexer(&consent_id).await.status,
        AtFinexer::Canceled
    );
}

#[tokio::test]
async fn account_reads_fail_clearly() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("fay").await;
    env.finexer_faults(&[failing("GET", "/bank_accounts", 500)])
        .await;
    let (status, problem) = env
        .consents("fay", &format!("/consents/{consent_id}/accounts"))
        .await;
    assert_eq!(status, 503, "{problem}");
    // The sandbox's answer says "Injected fault" with code sandbox_fault.
    for upstream in ["Injected", "sandbox_fault"] {
        assert!(
            !problem["detail"].as_str().unwrap().contains(upstream),
            "no upstream text leaks: {problem}"
        );
    }
}

#[tokio::test]
async fn a_rejected_api_key_is_not_blamed_on_the_caller() {
    // Finexer knows another key than the one in our secret: a genuine 401.
    let env = TestEnv::with(Options {
        finexer: SandboxConfig {
            api_key: "sk_test_another_key".into(),
            ..SandboxConfig::default()
        },
        ..Options::default()
    })
    .await;
    let (status, problem) = env.create_link("gus", json!({})).await;
    assert_eq!(status, 502);
    assert!(!problem.to_string().contains(API_KEY));
    let requests = env.finexer_requests().await;
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.call(), r.status))
            .collect::<Vec<_>>(),
        [("POST /customers".to_owned(), 401)],
        "refused once, not retried"
    );
}

#[tokio::test]
async fn a_consent_that_cannot_be_recorded_is_revoked_at_finexer() {
    let env = TestEnv::start().await;
    let app = shared::App::new(
        env.app.config.clone(),
        Arc::new(SpyStore {
            fail_inserts: true,
            ..SpyStore::default()
        }),
        env.app.secrets.clone(),
    )
    .unwrap();
    let (status, problem) = json_of(
        shared::handlers::create_link(
            &app,
            request("POST", "/links", "", Some("{}"), Some("hank")),
        )
        .await,
    );
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "/problems/store-unavailable");
    let calls = env.finexer_calls().await;
    let revoked = revoked_at_finexer(&calls);
    assert_eq!(revoked.len(), 1, "{calls:?}");
    assert_eq!(
        env.at_finexer(&revoked[0]).await.status,
        AtFinexer::Canceled,
        "the consent is not left live at Finexer"
    );
}

/// Ids of the consents a `POST /consents/{id}/revoke` was sent for.
fn revoked_at_finexer(calls: &[String]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|call| {
            call.strip_prefix("POST /consents/")?
                .strip_suffix("/revoke")
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn a_consent_page_on_an_unexpected_host_is_refused_and_revoked() {
    // Finexer hands out consent pages on a host we do not expect.
    let env = TestEnv::with(Options {
        finexer: SandboxConfig {
            api_key: API_KEY.into(),
            public_base_url: Some("https://evil.example".into()),
            ..SandboxConfig::default()
        },
        ..Options::default()
    })
    .await;
    let (status, problem) = env.create_link("ivan", json!({})).await;
    assert_eq!(status, 502, "{problem}");
    assert!(
        !problem.to_string().contains("evil.example"),
        "the URL is not repeated"
    );
    let calls = env.finexer_calls().await;
    let revoked = revoked_at_finexer(&calls);
    assert_eq!(revoked.len(), 1, "{calls:?}");
    let elsewhere = env.at_finexer(&revoked[0]).await;
    assert!(
        elsewhere
            .redirect
            .consent_url
            .starts_with("https://evil.example/")
    );
    assert_eq!(
        elsewhere.status,
        AtFinexer::Canceled,
        "the consent is not left live at Finexer"
    );
    assert!(
        env.item(&format!("CONSENT#{}", elsewhere.id), "CONSENT")
            .await
            .is_none(),
        "nothing recorded"
    );
    assert_eq!(env.item_count().await, 1, "only the customer");
}

/// Failed revokes (Finexer down) must not grow the record. Twice
/// `HISTORY_LIMIT` failures would show any growth per attempt, a history
/// entry included: the item after them is no bigger than after the first.
#[tokio::test]
async fn failed_revokes_do_not_grow_the_item_and_a_later_revoke_works() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("ursula").await;
    env.finexer_faults(&[failing(
        "POST",
        &format!("/consents/{consent_id}/revoke"),
        500,
    )])
    .await;
    let item_size = || async {
        let item = env
            .item(&format!("CONSENT#{consent_id}"), "CONSENT")
            .await
            .unwrap();
        format!("{item:?}").len()
    };
    let failures = 2 * shared::store::HISTORY_LIMIT;
    let mut after_first = 0;
    for attempt in 1..=failures {
        let (status, _) = env.revoke("ursula", &consent_id).await;
        assert_eq!(status, 503, "attempt {attempt}");
        if attempt == 1 {
            after_first = item_size().await;
        }
    }
    let after_all = item_size().await;
    // Times may differ in length by a few digits of their fraction.
    assert!(
        after_all <= after_first + 16,
        "{failures} failed revokes grew the item from ~{after_first} to ~{after_all} bytes"
    );
    env.reset_faults().await;
    let (status, record) = env.revoke("ursula", &consent_id).await;
    assert_eq!(status, 200, "{record}");
    let record: ConsentView = serde_json::from_value(record).unwrap();
    assert_eq!(record.status, ConsentStatus::Canceled);
    let statuses: Vec<ConsentStatus> = history_of(&record)
        .into_iter()
        .map(|(_, to, _)| to)
        .collect();
    assert_eq!(
        statuses,
        [
            ConsentStatus::Pending,
            ConsentStatus::Authorized,
            ConsentStatus::Authorized,
            ConsentStatus::RevokePending,
            ConsentStatus::Canceled
        ]
    );
}

/// A port nothing listens on: bound, then let go.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// `env`'s app, its secrets read through `source`.
fn with_secrets(env: &TestEnv, source: shared::secrets::SecretsManagerSource) -> shared::App {
    let store = shared::store::dynamo::DynamoStore::new(env.dynamo.clone(), &env.table);
    shared::App::new(env.app.config.clone(), Arc::new(store), Arc::new(source)).unwrap()
}

fn secrets_source(
    client: aws_sdk_secretsmanager::Client,
    ids: shared::secrets::SecretIds,
) -> shared::secrets::SecretsManagerSource {
    shared::secrets::SecretsManagerSource::new(client, ids, std::time::Duration::from_secs(300))
}

#[tokio::test]
async fn secrets_manager_away_is_a_503_and_garbage_state_never_asks_it() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("olga").await;
    let aws = aws_config().await;
    let away = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&aws)
            .endpoint_url(closed_port_url())
            .build(),
    );
    let app = with_secrets(&env, secrets_source(away, env.secret_ids.clone()));

    // A well-formed state needs the keys: the browser is asked to try again.
    let response = shared::handlers::callback(
        &app,
        request(
            "GET",
            "/callback",
            &format!("fx_consent={consent_id}&state={state}"),
            None,
            None,
        ),
    )
    .await;
    assert_eq!(html_error(&response), 503);
    assert!(response.headers().contains_key("retry-after"));

    // Not shaped like a state token: refused before any key is fetched
    // (fetching would have answered 503, as above).
    let garbage = "%00".repeat(40);
    for state in [
        garbage.as_str(),
        "a.b.c",
        "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsgMSJ9.e30.c2ln",
    ] {
        let response = shared::handlers::callback(
            &app,
            request(
                "GET",
                "/callback",
                &format!("fx_consent={consent_id}&state={state}"),
                None,
                None,
            ),
        )
        .await;
        assert_eq!(html_error(&response), 400, "{state}");
    }

    // The API: a problem with Retry-After.
    let response = shared::handlers::create_link(
        &app,
        request("POST", "/links", "", Some("{}"), Some("olga")),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(problem_of(&response).kind, "/problems/secrets-unavailable");

    // A signed webhook cannot be verified now: 503, so Finexer delivers it again.
    let mut event = event("POST", "/webhooks/finexer", "", Some("{}"), None);
    event["headers"]["fx-signature"] = "t=1,v1=00".into();
    let response = shared::handlers::webhook(
        &app,
        lambda_http::request::from_str(&event.to_string()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_missing_or_broken_secret_is_a_500_not_an_outage() {
    let env = TestEnv::start().await;
    let state_keys = env.secret_ids.state_keys.clone().unwrap();
    let broken_id = format!("{state_keys}-broken");
    env.secrets
        .create_secret()
        .name(&broken_id)
        .secret_string(r#"{"state_keys": "not a list"}"#)
        .send()
        .await
        .unwrap();
    for (secret_id, expected) in [
        (format!("{state_keys}-missing"), "ResourceNotFound"),
        (broken_id, "wrong shape"),
    ] {
        let ids = shared::secrets::SecretIds {
            state_keys: Some(secret_id),
            ..env.secret_ids.clone()
        };
        let app = with_secrets(&env, secrets_source(env.secrets.clone(), ids));
        let response = shared::handlers::create_link(
            &app,
            request("POST", "/links", "", Some("{}"), Some("pia")),
        )
        .await;
        assert_eq!(response.status(), 500, "{expected}");
        assert!(!response.headers().contains_key("retry-after"));
        assert_eq!(problem_of(&response).kind, "/problems/internal");
        let err = app.secrets.state_keys().await.err().unwrap();
        assert!(err.to_string().contains(expected), "{err}");
    }
}
