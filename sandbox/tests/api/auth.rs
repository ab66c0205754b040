//! Transport: HTTP Basic auth, API key as user name, empty password.

use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;

use crate::helpers::{API_KEY, TestSandbox, error_code, json_of};

#[tokio::test]
async fn missing_key_is_401_in_finexer_error_shape() {
    let sandbox = TestSandbox::start().await;
    let response = sandbox
        .client
        .get(sandbox.url("/providers"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get(WWW_AUTHENTICATE).is_some());
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body, "authentication_error"), "missing_api_key");
}

#[tokio::test]
async fn wrong_key_or_key_as_password_is_401() {
    let sandbox = TestSandbox::start().await;
    for (user, password) in [("sk_wrong", ""), ("", API_KEY), (API_KEY, "secret")] {
        let response = sandbox
            .client
            .get(sandbox.url("/providers"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}:{password}");
        assert_eq!(error_code(&body, "authentication_error"), "invalid_api_key");
    }
    let bearer = sandbox
        .client
        .get(sandbox.url("/providers"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn right_key_is_accepted_and_a_configured_key_replaces_the_default() {
    let sandbox = TestSandbox::start().await;
    let (status, body) = sandbox.get_json("/providers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["data"].is_array());

    let custom = TestSandbox::with(finexer_sandbox::SandboxConfig {
        api_key: "sk_custom".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        custom.get("/providers").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let ok = custom
        .client
        .get(custom.url("/providers"))
        .basic_auth("sk_custom", None::<&str>)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}
