//! The harness's own calls to the Finexer sandbox (API, admin endpoints and
//! request log) and to the local stack. Loopback only.

use std::time::Duration;

use finexer_sandbox::client::Admin;
use finexer_sandbox::model::ConsentStatus;
use serde_json::{Value, json};

/// The sandbox's default API key (Basic auth user name, empty password).
pub const SANDBOX_API_KEY: &str = "sk_sandbox_test";

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Result<Http, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Http { client })
    }

    async fn json(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, String> {
        let response = request.send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| format!("{what}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{what}: HTTP {status}: {text}"));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| format!("{what}: {e}: {text}"))
    }

    /// `GET /consents/{id}` at the sandbox (as Finexer).
    pub async fn sandbox_consent(&self, base: &str, id: &str) -> Result<Value, String> {
        let request = self
            .client
            .get(format!("{base}/consents/{id}"))
            .basic_auth(SANDBOX_API_KEY, Some(""));
        self.json(request, "sandbox GET /consents/{id}").await
    }

    /// Every pending consent at the sandbox (its admin API: Finexer's own
    /// has no listing we use).
    pub async fn sandbox_pending(&self, base: &str) -> Result<Vec<Value>, String> {
        let pending = self
            .sandbox_admin(base)
            .consents_in(finexer_sandbox::model::ConsentStatus::Pending)
            .await
            .map_err(|e| format!("sandbox GET /_sandbox/consents: {e}"))?;
        pending
            .iter()
            .map(|consent| serde_json::to_value(consent).map_err(|e| e.to_string()))
            .collect()
    }

    /// The sandbox's typed admin API at `base`, on this client.
    fn sandbox_admin(&self, base: &str) -> Admin {
        Admin::with_client(self.client.clone(), base)
    }

    /// Approves a consent as if the user had clicked through the bank.
    pub async fn sandbox_authorize(&self, base: &str, id: &str) -> Result<(), String> {
        self.sandbox_admin(base)
            .set_status(id, ConsentStatus::Authorized)
            .await
            .map(|_| ())
            .map_err(|e| format!("sandbox authorize: {e}"))
    }

    pub async fn sandbox_clear_log(&self, base: &str) -> Result<(), String> {
        self.sandbox_admin(base)
            .clear_requests()
            .await
            .map_err(|e| format!("sandbox DELETE /_sandbox/requests: {e}"))
    }

    /// The sandbox's request log: `(method, path, status, duration_ms)`.
    pub async fn sandbox_log(&self, base: &str) -> Result<Vec<(String, String, u16, u64)>, String> {
        let log = self
            .sandbox_admin(base)
            .requests()
            .await
            .map_err(|e| format!("sandbox GET /_sandbox/requests: {e}"))?;
        Ok(log
            .into_iter()
            .map(|e| (e.method, e.path, e.status, e.duration_ms))
            .collect())
    }

    /// A bearer token from the local stack's sign-in stand-in (on its demo
    /// frontend, `demo`).
    pub async fn local_token(&self, demo: &str, user: &str) -> Result<String, String> {
        let request = self
            .client
            .post(format!("{demo}/local/token"))
            .json(&json!({"user": user}));
        let answer = self.json(request, "local POST /local/token").await?;
        answer["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no token in the answer".to_owned())
    }

    /// `POST /links` through the local stack; the new consent id.
    pub async fn local_create_link(&self, base: &str, token: &str) -> Result<String, String> {
        let request = self
            .client
            .post(format!("{base}/links"))
            .bearer_auth(token)
            .json(&json!({}));
        let answer = self.json(request, "local POST /links").await?;
        answer["consent_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no consent_id in the answer".to_owned())
    }

    /// `POST /webhooks/finexer` through the local stack with the given
    /// `fx-signature`: the HTTP status (any status is an answer).
    pub async fn local_webhook(
        &self,
        base: &str,
        signature: &str,
        body: Vec<u8>,
    ) -> Result<u16, String> {
        let response = self
            .client
            .post(format!("{base}/webhooks/finexer"))
            .header("content-type", "application/json")
            .header("fx-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("local POST /webhooks/finexer: {e}"))?;
        let status = response.status().as_u16();
        // The answer is complete only once its body is read.
        response
            .bytes()
            .await
            .map_err(|e| format!("local POST /webhooks/finexer: {e}"))?;
        Ok(status)
    }

    /// `POST /local/reconcile`: one reconciler run acting at `at` (RFC
    /// 3339); its report. A run may take the whole invocation time (28 s).
    pub async fn local_reconcile(&self, base: &str, at: &str) -> Result<Value, String> {
        let request = self
            .client
            .post(format!("{base}/local/reconcile"))
            .timeout(Duration::from_secs(120))
            .json(&json!({"at": at}));
        self.json(request, "local POST /local/reconcile").await
    }
}

/// The `state` our create-link put into the return URL Finexer recorded.
pub fn state_of(sandbox_consent: &Value) -> Option<String> {
    let return_url = sandbox_consent["redirect"]["return_url"].as_str()?;
    let url = url::Url::parse(return_url).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
}
