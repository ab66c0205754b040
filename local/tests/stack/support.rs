//! A stack per test: its own table and secret in moto, its own sandbox, and
//! switchable TCP proxies in front of moto and the sandbox, so a test can cut
//! either off (connection refused) and restore it with all data intact.

use std::collections::HashMap;

use connect_local::{LocalConfig, RunningStack};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
pub use shared::consent::{ConsentStatus, ConsentView};
use shared::error::Problem;
use shared::handlers::LinkCreated;
use shared::handlers::reconcile::Report;
pub use shared::store::ChangeSource;

pub use connect_testkit::proxy::Proxy;
pub use connect_testkit::sandbox::Decision;
use connect_testkit::sandbox::decide_at_consent_page;

pub struct Stack {
    /// Kept so the stack runs as long as the test.
    pub _running: RunningStack,
    pub sandbox: finexer_sandbox::RunningSandbox,
    pub dynamo: Proxy,
    pub finexer: Proxy,
    /// Between the sandbox's webhook deliveries and our API; cut until a
    /// test calls `restore`.
    pub webhooks: Proxy,
    pub http: reqwest::Client,
    /// The API.
    pub base: String,
    /// The demo frontend, on another site: it mints the user tokens.
    pub demo: String,
    pub table: String,
    /// The functions' metric lines (EMF), captured instead of printed.
    pub metrics: shared::metrics::Captured,
}

/// moto applies one request at a time: while a test floods it, every other
/// request queues. The floods hold this exclusively, one at a time; tests
/// that time the store share it, so they never run during a flood.
static MOTO_LOAD: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// For a test that floods moto.
pub async fn flood() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    MOTO_LOAD.write().await
}

/// For a test whose assertions bound how long the store takes.
pub async fn timed() -> tokio::sync::RwLockReadGuard<'static, ()> {
    MOTO_LOAD.read().await
}

impl Stack {
    pub async fn start() -> Stack {
        Self::with(&[]).await
    }

    /// `extra`: function configuration on top of the test defaults.
    pub async fn with(extra: &[(&str, &str)]) -> Stack {
        // The sandbox's events reach our API through a proxy, started first
        // (the sandbox needs its URL) and pointed at the API once it listens.
        let webhooks = Proxy::start(String::new()).await;
        let sandbox = finexer_sandbox::start(finexer_sandbox::SandboxConfig {
            webhook_url: Some(format!("{}/webhooks/finexer", webhooks.url)),
            webhook_secret: connect_local::LOCAL_WEBHOOK_SECRET.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
        let finexer = Proxy::start(sandbox.addr().to_string()).await;
        let dynamo = Proxy::start(connect_testkit::aws::moto_address()).await;
        let suffix = format!("{:016x}", rand::random::<u64>());
        let table = format!("stack-{suffix}");
        let mut vars: HashMap<String, String> = HashMap::from([
            ("LOCAL_ADDR".into(), "127.0.0.1:0".into()),
            ("DEMO_ADDR".into(), "127.0.0.1:0".into()),
            ("AWS_ENDPOINT_URL".into(), dynamo.url.clone()),
            ("FINEXER_BASE_URL".into(), finexer.url.clone()),
            ("CONSENT_TABLE".into(), table.clone()),
            (
                "FINEXER_API_KEY_SECRET_ID".into(),
                format!("stack/{suffix}/api-key"),
            ),
            (
                "STATE_KEYS_SECRET_ID".into(),
                format!("stack/{suffix}/state-keys"),
            ),
            (
                "WEBHOOK_SECRETS_SECRET_ID".into(),
                format!("stack/{suffix}/webhook-secrets"),
            ),
            ("FINEXER_TIMEOUT_MS".into(), "500".into()),
            // moto applies one request at a time: under the parallel tests
            // a queue forms that production's 2 s would count as a stall.
            ("STORE_TIMEOUT_MS".into(), "10000".into()),
            // Tests run the reconciler when they mean to (`reconcile`).
            ("LOCAL_RECONCILE_SECONDS".into(), "0".into()),
        ]);
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        let mut config = LocalConfig::from_lookup(|name| vars.get(name).cloned()).unwrap();
        let (sink, metrics) = shared::metrics::Sink::capture();
        config.metrics_sink = Some(sink);
        let running = connect_local::start(config).await.unwrap();
        webhooks.retarget(running.base_url.trim_start_matches("http://").to_owned());
        // Closed unless a test opens it: the sandbox's own events would add
        // Finexer calls and store writes the other tests do not count on.
        webhooks.cut().await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Stack {
            base: running.base_url.clone(),
            demo: running.demo_url.clone(),
            _running: running,
            sandbox,
            dynamo,
            finexer,
            webhooks,
            http,
            table,
            metrics,
        }
    }

    /// The metric documents the functions emitted so far, each checked
    /// against the EMF specification.
    pub fn metric_documents(&self) -> Vec<Value> {
        let lines = self.metrics.lines();
        crate::emf::documents(lines.iter().map(String::as_str))
    }

    /// `POST /local/reconcile` with `run` (`at`, `budget_ms`): the report.
    pub async fn reconcile(&self, run: Value) -> Report {
        let response = self
            .http
            .post(format!("{}/local/reconcile", self.base))
            .json(&run)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// Delivers `body` to our webhook route with `fx-signature` if given.
    pub async fn webhook(&self, body: &[u8], signature: Option<&str>) -> Response {
        let mut request = self
            .http
            .post(format!("{}/webhooks/finexer", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("fx-signature", signature);
        }
        request.send().await.unwrap()
    }

    /// Sets a consent's status at the sandbox as the bank would (its
    /// webhook follows).
    pub async fn bank_sets(&self, consent_id: &str, status: &str) {
        let status: finexer_sandbox::model::ConsentStatus =
            serde_json::from_value(json!(status)).expect("a sandbox status");
        self.sandbox
            .admin()
            .set_status(consent_id, status)
            .await
            .expect("the sandbox sets the status");
    }

    pub async fn token(&self, user: &str) -> String {
        let response = self
            .http
            .post(format!("{}/local/token", self.demo))
            .json(&json!({"user": user}))
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn create_link(&self, token: &str, body: Value) -> Response {
        self.http
            .post(format!("{}/links", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A link for a preselected bank, the browser's binding cookie, and the
    /// consent page URL.
    pub async fn link(&self, token: &str) -> (String, String) {
        let response = self
            .create_link(
                token,
                json!({"provider": "sandbox-barclays", "skip_info": true}),
            )
            .await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let created: LinkCreated = serde_json::from_str(&body).expect("a LinkCreated");
        (created.consent_id, created.consent_url)
    }

    /// Clicks Approve (or Deny) on the sandbox's consent page and returns
    /// where it sends the browser: our callback URL.
    pub async fn decide(&self, consent_id: &str, decision: Decision) -> String {
        decide_at_consent_page(&self.sandbox.base_url(), consent_id, decision)
            .await
            .into()
    }

    pub async fn get(&self, url: &str) -> Response {
        self.http.get(url).send().await.unwrap()
    }

    pub async fn api(&self, token: &str, method: &str, path: &str) -> (StatusCode, Value) {
        let request = match method {
            "POST" => self.http.post(format!("{}{path}", self.base)),
            _ => self.http.get(format!("{}{path}", self.base)),
        };
        let response = request.bearer_auth(token).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A list answer (`GET /consents`, `GET /accounts`): 200 and its `data`,
    /// each entry as the API's type (`ConsentView`; an account is Finexer's
    /// JSON as it is passed on).
    pub async fn list<T: serde::de::DeserializeOwned>(&self, token: &str, path: &str) -> Vec<T> {
        #[derive(serde::Deserialize)]
        struct Listed<T> {
            data: Vec<T>,
        }
        let (status, body) = self.api(token, "GET", path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        serde_json::from_value::<Listed<T>>(body)
            .expect("a list answer")
            .data
    }

    pub async fn consent(&self, token: &str, id: &str) -> ConsentView {
        let (status, body) = self.api(token, "GET", &format!("/consents/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).expect("a ConsentView")
    }

    /// Finexer's own view of a consent.
    pub async fn finexer_status(&self, id: &str) -> String {
        let response = self
            .http
            .get(format!("{}/consents/{id}", self.sandbox.base_url()))
            .basic_auth(connect_local::SANDBOX_API_KEY, Some(""))
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn fault(&self, rule: Value) {
        let rule: finexer_sandbox::FaultRule = serde_json::from_value(rule).expect("a fault rule");
        self.sandbox
            .admin()
            .set_faults(&[rule])
            .await
            .expect("the sandbox takes the fault rule");
    }

    pub async fn clear_faults(&self) {
        self.sandbox
            .admin()
            .clear_faults()
            .await
            .expect("the sandbox clears its faults");
    }

    /// Finexer API calls the sandbox received, as `METHOD /path`.
    pub async fn finexer_calls(&self) -> Vec<String> {
        self.sandbox
            .admin()
            .calls()
            .await
            .expect("the sandbox's request log")
    }
}

/// An RFC 3339 time `seconds` from now, for `/local/reconcile`'s `at`.
pub fn in_seconds(seconds: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

pub fn event(id: &str, kind: &str, consent_id: &str) -> Vec<u8> {
    json!({"id": id, "object": "event", "type": kind, "created_at": in_seconds(0),
           "data": {"object": {"id": consent_id, "object": "consent"}}})
    .to_string()
    .into_bytes()
}

pub fn signed(body: &[u8]) -> String {
    finexer_sandbox::forgeries::signed_at(
        connect_local::LOCAL_WEBHOOK_SECRET,
        time::OffsetDateTime::now_utc(),
        body,
    )
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// What the frontend receives from the callback's redirect to `location`:
/// its query and, as `code`, the one-time code from the fragment (never in
/// the query).
pub fn returned(location: &str) -> HashMap<String, String> {
    let back = url::Url::parse(location).unwrap();
    let mut received = query_of(back.as_str());
    assert!(
        !received.contains_key("code"),
        "a code in the query: {back}"
    );
    if let Some(code) = connect_testkit::pkce::fragment_code(&back) {
        received.insert("code".into(), code);
    }
    received
}

/// How many of a consent view's history entries `source` made.
pub fn changes_by(record: &ConsentView, source: ChangeSource) -> usize {
    record.history.iter().filter(|h| h.source == source).count()
}

/// Asserts an API problem response: status, JSON problem shape (all four
/// fields, the status repeated).
pub async fn problem(response: Response, status: u16) -> Problem {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = response.text().await.unwrap();
    let problem: Problem = serde_json::from_str(&body).expect("a problem");
    assert_eq!(problem.status, status, "{body}");
    problem
}

/// The owner's confirmation step, as a frontend drives it.
impl Stack {
    /// Approves at the sandbox's consent page and follows the browser back
    /// through our callback: what the frontend receives, its query and, as
    /// `code`, the one-time code from the fragment (never in the query).
    pub async fn approve(&self, consent_id: &str) -> HashMap<String, String> {
        let callback = self.decide(consent_id, Decision::Approve).await;
        let response = self.get(&callback).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        returned(response.headers()["location"].to_str().unwrap())
    }

    pub async fn confirm(&self, token: &str, consent_id: &str, code: &str) -> (StatusCode, Value) {
        self.confirm_with(token, consent_id, json!({ "code": code }))
            .await
    }

    /// `POST /consents/{id}/confirm` with any body (a proof beside the code).
    pub async fn confirm_with(
        &self,
        token: &str,
        consent_id: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/consents/{consent_id}/confirm", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A link of the token's user, approved and confirmed.
    pub async fn confirmed_link(&self, token: &str) -> String {
        let (consent_id, _) = self.link(token).await;
        let back = self.approve(&consent_id).await;
        let (status, body) = self.confirm(token, &consent_id, &back["code"]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        consent_id
    }
}
