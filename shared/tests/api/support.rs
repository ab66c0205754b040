//! Test harness: a real DynamoDB/Secrets Manager API (moto, started by
//! `make test` and named by `AWS_ENDPOINT_URL`), a fresh table and secret per
//! test, and the in-process Finexer sandbox as Finexer, driven through its
//! typed admin client (statuses, faults, the request log).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use shared::store::memory::MemoryStore;
use shared::store::*;
use std::sync::Arc;
use std::time::Duration;

use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::App;
pub use shared::Timestamp;
use shared::config::Config;
pub use shared::consent::{ConsentStatus, ConsentView};
use shared::error::Problem;
pub use shared::handlers::LinkCreated;
use shared::secrets::{SecretIds, SecretsManagerSource};
pub use shared::store::ChangeSource;
use shared::store::dynamo::DynamoStore;

use connect_testkit::event::Event;
pub use connect_testkit::pkce::{challenge, fragment_code, verifier};
use finexer_sandbox::client::Admin;
pub use finexer_sandbox::model::ConsentStatus as AtFinexer;
pub use finexer_sandbox::request_log::LoggedRequest;
use finexer_sandbox::{FaultRule, RunningSandbox, SandboxConfig};

pub const FRONTEND: &str = "http://127.0.0.1:3000/connected";
pub const OTHER_FRONTEND: &str = "https://app.example.com/return";
pub const CALLBACK: &str = "https://api.example.com/callback";
pub const KEY_NEW: &str = "new-signing-key-new-signing-key-0001";
pub const KEY_OLD: &str = "old-signing-key-old-signing-key-0001";
pub const API_KEY: &str = "sk_test_finexer_key";
pub const WEBHOOK_SECRET: &str = "whsec_api_tests";

/// The bank a consent created without one is authorized at, as if chosen on
/// Finexer's consent page.
pub const BANK: &str = "sandbox-barclays";

pub struct TestEnv {
    pub app: App,
    /// Finexer: the sandbox, in this process, on its own port (it stops
    /// when dropped, so the env holds it).
    _finexer: RunningSandbox,
    /// Its admin API: statuses, faults, the log of what it was asked.
    pub admin: Admin,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub table: String,
    /// The three secrets, each its own as deployed.
    pub secret_ids: SecretIds,
}

pub fn aws_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL is not set: these tests need the DynamoDB/Secrets Manager emulator; run them with `make test`",
    )
}

pub async fn aws_config() -> aws_config::SdkConfig {
    let endpoint = aws_endpoint();
    assert!(
        endpoint.starts_with("http://127.0.0.1"),
        "tests talk to 127.0.0.1 only, not {endpoint}"
    );
    // Generous: moto applies one request at a time, and tests run many at once.
    shared::net::aws_config_loader(Duration::from_secs(10))
        .unwrap()
        .load()
        .await
}

/// The state-signing keys secret's JSON.
pub fn state_keys_json(keys: &[(&str, &str)]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, key)| json!({"kid": kid, "key": key}))
        .collect();
    json!({"state_keys": keys}).to_string()
}

pub struct Options {
    pub account_data_enabled: bool,
    pub timeout_ms: u64,
    /// The sandbox's settings; its API key is the one in our secret unless set.
    pub finexer: SandboxConfig,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            account_data_enabled: true,
            timeout_ms: 1000,
            finexer: SandboxConfig {
                api_key: API_KEY.into(),
                ..SandboxConfig::default()
            },
        }
    }
}

impl TestEnv {
    pub async fn start() -> TestEnv {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> TestEnv {
        let aws = aws_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let secrets = aws_sdk_secretsmanager::Client::new(&aws);
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let table = format!("consents-{suffix}");
        DynamoStore::new(dynamo.clone(), &table)
            .create_table()
            .await
            .expect("create table in moto");
        let secret_ids = SecretIds {
            finexer_api_key: Some(format!("connect/{suffix}/api-key")),
            state_keys: Some(format!("connect/{suffix}/state-keys")),
            webhook_secrets: Some(format!("connect/{suffix}/webhook-secrets")),
        };
        for (id, value) in [
            (
                &secret_ids.finexer_api_key,
                json!({"finexer_api_key": API_KEY}).to_string(),
            ),
            (
                &secret_ids.state_keys,
                state_keys_json(&[("k-new", KEY_NEW), ("k-old", KEY_OLD)]),
            ),
            (
                &secret_ids.webhook_secrets,
                json!({"webhook_secrets": [WEBHOOK_SECRET]}).to_string(),
            ),
        ] {
            secrets
                .create_secret()
                .name(id.as_deref().unwrap())
                .secret_string(value)
                .send()
                .await
                .expect("create secret in moto");
        }

        let finexer = finexer_sandbox::start(options.finexer)
            .await
            .expect("the Finexer sandbox starts");
        let admin = finexer.admin();

        let vars: HashMap<&str, String> = HashMap::from([
            ("CONSENT_TABLE", table.clone()),
            ("CALLBACK_URL", CALLBACK.into()),
            ("FRONTEND_URLS", format!("{FRONTEND},{OTHER_FRONTEND}")),
            ("FINEXER_BASE_URL", finexer.base_url()),
            ("FINEXER_TIMEOUT_MS", options.timeout_ms.to_string()),
            (
                "ACCOUNT_DATA_ENABLED",
                options.account_data_enabled.to_string(),
            ),
        ]);
        let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
        let store = DynamoStore::new(dynamo.clone(), &table);
        let secret_source = SecretsManagerSource::new(
            secrets.clone(),
            secret_ids.clone(),
            Duration::from_secs(300),
        );
        let mut app = App::new(config, Arc::new(store), Arc::new(secret_source)).unwrap();
        app.finexer = app.finexer.clone().with_backoff(Duration::from_millis(10));
        TestEnv {
            app,
            _finexer: finexer,
            admin,
            dynamo,
            secrets,
            table,
            secret_ids,
        }
    }

    /// Requests Finexer received, as `METHOD /path`, oldest first.
    pub async fn finexer_calls(&self) -> Vec<String> {
        self.admin.calls().await.expect("the sandbox's request log")
    }

    /// Requests Finexer received, whole: query, form body, the status it answered.
    pub async fn finexer_requests(&self) -> Vec<LoggedRequest> {
        self.admin
            .requests()
            .await
            .expect("the sandbox's request log")
    }

    /// The consent as Finexer holds it (read through the admin API, so it
    /// adds nothing to the request log).
    pub async fn at_finexer(&self, consent_id: &str) -> finexer_sandbox::model::Consent {
        self.admin
            .consent(consent_id)
            .await
            .expect("the consent exists at Finexer")
    }

    /// Finexer now says `status` for the consent, as after the account holder
    /// acted at the bank; an authorization picks `BANK` if none was chosen.
    pub async fn finexer_says(&self, consent_id: &str, status: AtFinexer) {
        let changed = if status == AtFinexer::Authorized
            && self.at_finexer(consent_id).await.provider.is_none()
        {
            self.admin.authorize_with(consent_id, BANK).await
        } else {
            self.admin.set_status(consent_id, status).await
        };
        assert_eq!(
            changed.expect("the sandbox takes the status").status,
            status
        );
    }

    /// Replaces Finexer's fault rules: the first matching rule decides an answer.
    pub async fn finexer_faults(&self, rules: &[FaultRule]) {
        self.admin
            .set_faults(rules)
            .await
            .expect("the sandbox takes the rules");
    }

    pub async fn reset_faults(&self) {
        self.admin.clear_faults().await.expect("faults cleared");
    }

    pub async fn create_link(&self, user: &str, body: Value) -> (u16, Value) {
        let response = shared::handlers::create_link(
            &self.app,
            request("POST", "/links", "", Some(&body.to_string()), Some(user)),
        )
        .await;
        json_of(response)
    }

    /// `POST /links`, typed.
    pub async fn create_link_reply(&self, user: &str, body: Value) -> Reply<LinkCreated> {
        let response = shared::handlers::create_link(
            &self.app,
            request("POST", "/links", "", Some(&body.to_string()), Some(user)),
        )
        .await;
        Reply::of(&response)
    }

    /// Any `GET` of the consents function, typed.
    pub async fn read<T: DeserializeOwned + std::fmt::Debug>(
        &self,
        user: &str,
        path: &str,
    ) -> Reply<T> {
        let response =
            shared::handlers::consents(&self.app, request("GET", path, "", None, Some(user))).await;
        Reply::of(&response)
    }

    /// `GET /consents/{id}` of `user`'s, which must be found.
    pub async fn view(&self, user: &str, consent_id: &str) -> ConsentView {
        self.read(user, &format!("/consents/{consent_id}"))
            .await
            .ok()
    }

    pub async fn callback(&self, query: &str) -> Response<Body> {
        shared::handlers::callback(&self.app, request("GET", "/callback", query, None, None)).await
    }

    pub async fn consents(&self, user: &str, path: &str) -> (u16, Value) {
        json_of(
            shared::handlers::consents(&self.app, request("GET", path, "", None, Some(user))).await,
        )
    }

    pub async fn confirm(&self, user: &str, consent_id: &str, code: &str) -> (u16, Value) {
        self.confirm_with(user, consent_id, json!({ "code": code }))
            .await
    }

    /// `POST /consents/{id}/confirm` with any body (a proof beside the code).
    pub async fn confirm_with(&self, user: &str, consent_id: &str, body: Value) -> (u16, Value) {
        let body = body.to_string();
        json_of(
            shared::handlers::confirm(
                &self.app,
                request(
                    "POST",
                    &format!("/consents/{consent_id}/confirm"),
                    "",
                    Some(&body),
                    Some(user),
                ),
            )
            .await,
        )
    }

    /// Approves `consent_id` at Finexer and comes back through the callback
    /// with `state`; returns the one-time code the redirect carries in its
    /// fragment (never in its query).
    pub async fn approve(&self, consent_id: &str, state: &str) -> String {
        self.finexer_says(consent_id, AtFinexer::Authorized).await;
        let response = self
            .callback(&format!("fx_consent={consent_id}&state={state}"))
            .await;
        let back = location(&response);
        let query = query_of(&back);
        assert_eq!(query["status"], "authorized", "{back}");
        assert!(
            !query.contains_key("code"),
            "the code is not in the query: {back}"
        );
        fragment_code(&back).expect("an approval carries its code in the fragment")
    }

    /// A consent of `user`'s, approved and confirmed: its data is served.
    pub async fn confirmed_link(&self, user: &str) -> String {
        let (consent_id, state) = self.link(user).await;
        let code = self.approve(&consent_id, &state).await;
        let (status, body) = self.confirm(user, &consent_id, &code).await;
        assert_eq!(status, 200, "{body}");
        consent_id
    }

    /// Delivers a webhook with `body` and, if given, `fx-signature`.
    pub async fn webhook(&self, body: &str, signature: Option<&str>) -> (u16, Value) {
        let mut event = event("POST", "/webhooks/finexer", "", Some(body), None);
        if let Some(signature) = signature {
            event["headers"]["fx-signature"] = signature.into();
        }
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        json_of(shared::handlers::webhook(&self.app, request).await)
    }

    /// Runs the reconciler as if at `at` (now when None).
    pub async fn reconcile_at(
        &self,
        at: Option<time::OffsetDateTime>,
    ) -> shared::handlers::reconcile::Report {
        let run = shared::handlers::reconcile::Run {
            at: at.map(|at| Timestamp::from(at).to_string()),
            budget_ms: None,
        };
        shared::handlers::reconcile(&self.app, run).await.unwrap()
    }

    pub async fn record(&self, consent_id: &str) -> ConsentRecord {
        self.app.store.consent(consent_id).await.unwrap().unwrap()
    }

    pub async fn revoke(&self, user: &str, consent_id: &str) -> (u16, Value) {
        json_of(
            shared::handlers::revoke(
                &self.app,
                request(
                    "POST",
                    &format!("/consents/{consent_id}/revoke"),
                    "",
                    None,
                    Some(user),
                ),
            )
            .await,
        )
    }

    /// Raw DynamoDB item, to check what was written.
    pub async fn item(
        &self,
        pk: &str,
        sk: &str,
    ) -> Option<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        use aws_sdk_dynamodb::types::AttributeValue::S;
        self.dynamo
            .get_item()
            .table_name(&self.table)
            .key("pk", S(pk.into()))
            .key("sk", S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    pub async fn item_count(&self) -> usize {
        self.dynamo
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
            .len()
    }

    /// Creates a link and returns (consent id, state token).
    pub async fn link(&self, user: &str) -> (String, String) {
        self.link_with(user, json!({})).await
    }

    /// A link of `user`'s created with the S256 challenge of `verifier`.
    pub async fn challenged_link(&self, user: &str, verifier: &str) -> (String, String) {
        self.link_with(user, json!({ "code_challenge": challenge(verifier) }))
            .await
    }

    /// A link of `user`'s created with `body`: its consent id and state.
    pub async fn link_with(&self, user: &str, body: Value) -> (String, String) {
        let (status, body) = self.create_link(user, body).await;
        assert_eq!(status, 201, "{body}");
        let consent_id = body["consent_id"].as_str().unwrap().to_owned();
        let state = self.state_sent_to_finexer(&consent_id).await;
        (consent_id, state)
    }

    /// The `state` in the return_url we gave Finexer for this consent (the
    /// consent keeps it as sent; the request log cannot tell which create made
    /// which consent).
    pub async fn state_sent_to_finexer(&self, consent_id: &str) -> String {
        let consent = self.at_finexer(consent_id).await;
        let return_url = consent.redirect.return_url.expect("a return_url was sent");
        let return_url = url::Url::parse(&return_url).unwrap();
        return_url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }
}

/// Finexer answers `status` to every `method` request under `path_prefix`.
pub fn failing(method: &str, path_prefix: &str, status: u16) -> FaultRule {
    FaultRule::failing(Some(method), path_prefix, status)
}

/// Finexer answers, but only after 3 s: past the client's timeout (1 s).
pub fn too_slow(method: &str, path_prefix: &str) -> FaultRule {
    FaultRule {
        method: Some(method.into()),
        path_prefix: path_prefix.into(),
        latency_ms: 3000,
        ..FaultRule::default()
    }
}

/// An API Gateway HTTP API (v2) event, as the Lambda runtime would hand it
/// to a function (the test kit's builder); `user` fills the JWT authorizer's
/// claims. As JSON, so that tests can make it hostile.
pub fn event(
    method: &str,
    path: &str,
    query: &str,
    body: Option<&str>,
    user: Option<&str>,
) -> Value {
    let mut event = Event::new(method, path)
        .query(query)
        .header("content-type", "application/json");
    if let Some(body) = body {
        event = event.text(body);
    }
    if let Some(user) = user {
        event = event.user(user);
    }
    event.to_json()
}

pub fn request(
    method: &str,
    path: &str,
    query: &str,
    body: Option<&str>,
    user: Option<&str>,
) -> Request {
    lambda_http::request::from_str(&event(method, path, query, body, user).to_string()).unwrap()
}

fn text_of(response: &Response<Body>) -> String {
    match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

/// Status and body as JSON; an error must be a problem (see `problem_of`).
pub fn json_of(response: Response<Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    if status >= 400 {
        problem_of(&response);
    }
    let text = text_of(&response);
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// An error answer: `application/problem+json` with its four fields, its
/// `status` the HTTP status.
pub fn problem_of(response: &Response<Body>) -> Problem {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "errors are problems"
    );
    let text = text_of(response);
    let problem: Problem = serde_json::from_str(&text)
        .unwrap_or_else(|why| panic!("a problem (type, title, status, detail): {why}: {text}"));
    assert_eq!(problem.status, response.status().as_u16(), "{problem:?}");
    assert!(problem.kind.starts_with("/problems/"), "{problem:?}");
    assert!(
        !problem.title.is_empty() && !problem.detail.is_empty(),
        "{problem:?}"
    );
    problem
}

/// A success answer (2xx) as the API's type for it.
pub fn answer_of<T: DeserializeOwned>(response: &Response<Body>) -> T {
    let text = text_of(response);
    assert!(
        response.status().is_success(),
        "expected success, got {}: {text}",
        response.status()
    );
    serde_json::from_str(&text)
        .unwrap_or_else(|why| panic!("not the expected answer type: {why}: {text}"))
}

/// Either the typed answer or the problem, for tests that take both.
#[derive(Debug)]
pub enum Reply<T> {
    Ok(T),
    Problem(Problem),
}

impl<T: DeserializeOwned + std::fmt::Debug> Reply<T> {
    pub fn of(response: &Response<Body>) -> Self {
        if response.status().is_success() {
            Reply::Ok(answer_of(response))
        } else {
            Reply::Problem(problem_of(response))
        }
    }

    #[track_caller]
    pub fn ok(self) -> T {
        match self {
            Reply::Ok(answer) => answer,
            Reply::Problem(problem) => panic!("expected success, got {problem:?}"),
        }
    }

    #[track_caller]
    pub fn problem(self) -> Problem {
        match self {
            Reply::Problem(problem) => problem,
            Reply::Ok(answer) => panic!("expected a problem, got {answer:?}"),
        }
    }
}

/// (from, to, source) of each change, oldest first.
pub fn history_of(view: &ConsentView) -> Vec<(Option<ConsentStatus>, ConsentStatus, ChangeSource)> {
    view.history
        .iter()
        .map(|entry| (entry.from.clone(), entry.to.clone(), entry.source))
        .collect()
}

/// `GET /consents`: a page of the caller's consents.
#[derive(Debug, Deserialize)]
pub struct ConsentPage {
    pub data: Vec<ConsentView>,
    pub next_cursor: Option<String>,
}

/// An account as the API passes Finexer's on (only what tests read).
#[derive(Debug, Deserialize, PartialEq)]
pub struct Account {
    pub id: String,
    pub consent: String,
}

#[derive(Debug, Deserialize)]
pub struct Accounts {
    pub data: Vec<Account>,
}

pub fn location(response: &Response<Body>) -> url::Url {
    assert_eq!(
        response.status(),
        303,
        "expected a redirect, got {:?}",
        response.body()
    );
    url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

pub fn query_of(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

pub fn html_error(response: &Response<Body>) -> u16 {
    assert!(
        response.headers().get("location").is_none(),
        "error pages never redirect"
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "browser errors are HTML"
    );
    response.status().as_u16()
}

/// An in-memory store that counts customer reads and can fail consent
/// writes, as when DynamoDB goes away between the Finexer call and our write.
#[derive(Default)]
pub struct SpyStore {
    pub inner: MemoryStore,
    pub fail_inserts: bool,
    pub customer_reads: AtomicUsize,
}

#[async_trait]
impl ConsentStore for SpyStore {
    async fn customer(&self, owner: &str) -> shared::Result<Option<String>> {
        self.customer_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.customer(owner).await
    }
    async fn claim_customer(&self, o: &str, n: i64, l: i64) -> shared::Result<CustomerClaim> {
        self.inner.claim_customer(o, n, l).await
    }
    async fn save_customer(&self, owner: &str, id: &str) -> shared::Result<String> {
        self.inner.save_customer(owner, id).await
    }
    async fn release_customer_claim(&self, owner: &str) -> shared::Result<()> {
        self.inner.release_customer_claim(owner).await
    }
    async fn take_pending_place(
        &self,
        link: PendingLink<'_>,
        now: i64,
        max: usize,
    ) -> shared::Result<PendingPlace> {
        self.inner.take_pending_place(link, now, max).await
    }
    async fn free_pending_place(&self, owner: &str, state_id: &str) -> shared::Result<()> {
        self.inner.free_pending_place(owner, state_id).await
    }
    async fn insert_consent(&self, c: &ConsentRecord, s: &StateRecord) -> shared::Result<()> {
        if self.fail_inserts {
            return Err(shared::Error::StoreUnavailable("injected".into()));
        }
        self.inner.insert_consent(c, s).await
    }
    async fn consent(&self, id: &str) -> shared::Result<Option<ConsentRecord>> {
        self.inner.consent(id).await
    }
    async fn consents_of(&self, owner: &str, page: &Page) -> shared::Result<Listing> {
        self.inner.consents_of(owner, page).await
    }
    async fn consume_state(
        &self,
        s: &str,
        c: &str,
        n: i64,
        f: &[ConsentStatus],
        t: &Transition,
    ) -> shared::Result<ConsumeOutcome> {
        self.inner.consume_state(s, c, n, f, t).await
    }
    async fn transition(
        &self,
        c: &str,
        g: Guard<'_>,
        f: &[ConsentStatus],
        t: &Transition,
    ) -> shared::Result<Option<ConsentRecord>> {
        self.inner.transition(c, g, f, t).await
    }
    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
        after: Option<&DueCursor>,
    ) -> shared::Result<DuePage> {
        self.inner.due(now, limit, after).await
    }
    async fn move_due(
        &self,
        c: &str,
        seen: Timestamp,
        to: Option<Timestamp>,
    ) -> shared::Result<Option<ConsentRecord>> {
        self.inner.move_due(c, seen, to).await
    }
    async fn record_event(&self, id: &str, expires_at: i64) -> shared::Result<bool> {
        self.inner.record_event(id, expires_at).await
    }
    async fn forget_event(&self, id: &str) -> shared::Result<()> {
        self.inner.forget_event(id).await
    }
    async fn delete_consent(&self, c: &str, s: &str) -> shared::Result<()> {
        self.inner.delete_consent(c, s).await
    }
    async fn delete_customer(&self, owner: &str) -> shared::Result<()> {
        self.inner.delete_customer(owner).await
    }
}
