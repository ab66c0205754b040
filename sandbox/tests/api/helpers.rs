//! A sandbox per test, and a client that speaks to it the way a Finexer client must.

use std::time::Duration;

use finexer_sandbox::client::Admin;
use finexer_sandbox::{RunningSandbox, SandboxConfig, start};
use reqwest::header::LOCATION;
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

pub const API_KEY: &str = "sk_sandbox_test";

pub struct TestSandbox {
    pub sandbox: RunningSandbox,
    /// Never follows redirects, so tests see the consent page's 303s.
    pub client: Client,
    /// The typed admin API (`/_sandbox/...`).
    pub admin: Admin,
}

impl TestSandbox {
    pub async fn start() -> Self {
        Self::with(SandboxConfig::default()).await
    }

    pub async fn with(config: SandboxConfig) -> Self {
        let sandbox = start(config).await.expect("sandbox starts");
        Self {
            admin: sandbox.admin(),
            sandbox,
            client: test_client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .basic_auth(API_KEY, Some(""))
            .send()
            .await
            .expect("request is answered")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url(path))
            .basic_auth(API_KEY, Some(""))
            .form(form)
            .send()
            .await
            .expect("request is answered")
    }

    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        json_of(self.get(path).await).await
    }

    pub async fn post_json_answer(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        json_of(self.post_form(path, form).await).await
    }

    pub async fn create_customer(&self) -> String {
        let (status, customer) = self
            .post_json_answer(
                "/customers",
                &[("name", "Ada Lovelace"), ("email", "ada@example.com")],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{customer}");
        customer["id"].as_str().expect("customer id").to_owned()
    }

    /// A pending consent for a new customer, returning to `return_url`.
    pub async fn pending_consent(&self, extra: &[(&str, &str)]) -> Value {
        let customer = self.create_customer().await;
        let mut form = vec![
            ("customer", customer.as_str()),
            (
                "return_url",
                "https://app.example/callback/sess-1?state=st%2B1&lang=en",
            ),
        ];
        form.extend_from_slice(extra);
        let (status, consent) = self.post_json_answer("/consents", &form).await;
        assert_eq!(status, StatusCode::OK, "{consent}");
        assert_eq!(consent["status"], "pending");
        consent
    }

    /// Path (with query) of a consent page link, relative to the sandbox.
    pub fn page_path(&self, consent: &Value) -> String {
        let link = consent["redirect"]["consent_url"]
            .as_str()
            .expect("consent_url");
        link.strip_prefix(&self.sandbox.base_url())
            .expect("consent_url is on the sandbox")
            .to_owned()
    }

    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("page answers");
        let status = response.status();
        (status, response.text().await.expect("page body"))
    }

    /// Posts a consent page form; returns status, Location and body.
    pub async fn submit(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String) {
        let response = self
            .client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("form answers");
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|value| value.to_str().expect("ASCII location").to_owned());
        (status, location, response.text().await.expect("body"))
    }

    /// Clicks through the page: choose `bank` (when asked) and approve.
    /// Returns the `Location` of the final redirect.
    pub async fn approve(&self, consent: &Value, bank: &str) -> String {
        let id = consent["id"].as_str().expect("consent id");
        if consent["provider"].is_null() {
            let (status, location, _) = self
                .submit(&format!("/connect/{id}/bank"), &[("provider", bank)])
                .await;
            assert_eq!(status, StatusCode::SEE_OTHER);
            assert!(location.is_some());
        }
        let (status, location, body) = self
            .submit(
                &format!("/connect/{id}/decision"),
                &[("decision", "approve")],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        location.expect("approval redirects")
    }

    /// A consent authorized through the page, with its customer id.
    pub async fn authorized_consent(&self, extra: &[(&str, &str)]) -> Value {
        let consent = self.pending_consent(extra).await;
        self.approve(&consent, "sandbox-lloyds").await;
        let id = consent["id"].as_str().expect("consent id");
        let (_, consent) = self.get_json(&format!("/consents/{id}")).await;
        assert_eq!(consent["status"], "authorized");
        consent
    }
}

/// Never follows redirects. Installs the TLS provider the workspace's reqwest
/// lacks, as a client of the sandbox would.
pub fn test_client() -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client builds")
}

pub async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {status}: {text}"));
    (status, value)
}

/// Asserts Finexer's error shape and returns the code.
pub fn error_code(body: &Value, expected_type: &str) -> String {
    let error = &body["error"];
    assert_eq!(error["type"], expected_type, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    error["code"].as_str().expect("error code").to_owned()
}

/// The query parameters of a URL, in order.
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .expect("absolute URL")
        .query_pairs()
        .into_owned()
        .collect()
}
