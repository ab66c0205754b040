//! Test harness: a real DynamoDB/Secrets Manager API (moto, started by
//! `make test` and named by `AWS_ENDPOINT_URL`), a fresh table and secret per
//! test, and a wiremock Finexer that keeps each consent's status.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use shared::store::memory::MemoryStore;
use shared::store::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::App;
use shared::config::Config;
use shared::secrets::SecretsManagerSource;
use shared::store::dynamo::DynamoStore;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const FRONTEND: &str = "http://127.0.0.1:3000/connected";
pub const OTHER_FRONTEND: &str = "https://app.example.com/return";
pub const CALLBACK: &str = "https://api.example.com/callback";
pub const KEY_NEW: &str = "new-signing-key-new-signing-key-0001";
pub const KEY_OLD: &str = "old-signing-key-old-signing-key-0001";
pub const API_KEY: &str = "sk_test_finexer_key";
pub const WEBHOOK_SECRET: &str = "whsec_api_tests";

/// Finexer's view of each consent, shared with the mock's responders.
#[derive(Clone, Default)]
pub struct FinexerState {
    statuses: Arc<Mutex<HashMap<String, String>>>,
    next_id: Arc<AtomicUsize>,
}

impl FinexerState {
    pub fn set(&self, consent_id: &str, status: &str) {
        self.statuses
            .lock()
            .unwrap()
            .insert(consent_id.into(), status.into());
    }

    fn status(&self, consent_id: &str) -> Option<String> {
        self.statuses.lock().unwrap().get(consent_id).cloned()
    }
}

pub struct TestEnv {
    pub app: App,
    pub finexer: MockServer,
    pub finexer_state: FinexerState,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub table: String,
    pub secret_id: String,
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

pub fn secret_json(keys: &[(&str, &str)]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, key)| json!({"kid": kid, "key": key}))
        .collect();
    json!({"finexer_api_key": API_KEY, "state_keys": keys, "webhook_secrets": [WEBHOOK_SECRET]})
        .to_string()
}

pub struct Options {
    pub account_data_enabled: bool,
    pub timeout_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            account_data_enabled: true,
            timeout_ms: 1000,
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
        let secret_id = format!("connect/{suffix}");
        DynamoStore::new(dynamo.clone(), &table)
            .create_table()
            .await
            .expect("create table in moto");
        secrets
            .create_secret()
            .name(&secret_id)
            .secret_string(secret_json(&[("k-new", KEY_NEW), ("k-old", KEY_OLD)]))
            .send()
            .await
            .expect("create secret in moto");

        let finexer = MockServer::start().await;
        let finexer_state = FinexerState::default();
        mount_finexer(&finexer, &finexer_state).await;

        let vars: HashMap<&str, String> = HashMap::from([
            ("CONSENT_TABLE", table.clone()),
            ("CONNECT_SECRET_ID", secret_id.clone()),
            ("CALLBACK_URL", CALLBACK.into()),
            ("FRONTEND_URLS", format!("{FRONTEND},{OTHER_FRONTEND}")),
            ("FINEXER_BASE_URL", finexer.uri()),
            ("FINEXER_TIMEOUT_MS", options.timeout_ms.to_string()),
            (
                "ACCOUNT_DATA_ENABLED",
                options.account_data_enabled.to_string(),
            ),
        ]);
        let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
        let store = DynamoStore::new(dynamo.clone(), &table);
        let secret_source =
            SecretsManagerSource::new(secrets.clone(), secret_id.clone(), Duration::from_secs(300));
        let mut app = App::new(config, Arc::new(store), Arc::new(secret_source)).unwrap();
        app.finexer = app.finexer.clone().with_backoff(Duration::from_millis(10));
        TestEnv {
            app,
            finexer,
            finexer_state,
            dynamo,
            secrets,
            table,
            secret_id,
        }
    }

    /// Requests Finexer received, as `METHOD /path`.
    pub async fn finexer_calls(&self) -> Vec<String> {
        self.finexer
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| format!("{} {}", r.method, r.url.path()))
            .collect()
    }

    /// Makes Finexer answer `status` to `method path_regex` `times` times.
    pub async fn finexer_fault(
        &self,
        http_method: &str,
        path_pattern: &str,
        response: ResponseTemplate,
        times: Option<u64>,
    ) {
        let mock = Mock::given(method(http_method))
            .and(path_regex(path_pattern))
            .respond_with(response)
            .with_priority(1);
        match times {
            Some(n) => mock.up_to_n_times(n).mount(&self.finexer).await,
            None => mock.mount(&self.finexer).await,
        }
    }

    pub async fn reset_faults(&self) {
        self.finexer.reset().await;
        mount_finexer(&self.finexer, &self.finexer_state).await;
    }

    pub async fn create_link(&self, user: &str, body: Value) -> (u16, Value) {
        let response = shared::handlers::create_link(
            &self.app,
            request("POST", "/links", "", Some(&body.to_string()), Some(user)),
        )
        .await;
        json_of(response)
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
        let body = json!({ "code": code }).to_string();
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
    /// with `state`; returns the one-time code the redirect carries.
    pub async fn approve(&self, consent_id: &str, state: &str) -> String {
        self.finexer_state.set(consent_id, "authorized");
        let response = self
            .callback(&format!("fx_consent={consent_id}&state={state}"))
            .await;
        let back = query_of(&location(&response));
        assert_eq!(back["status"], "authorized", "{back:?}");
        back["code"].clone()
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
            at: at.map(|at| shared::app::timestamp(at).unwrap()),
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
        let (status, body) = self.create_link(user, json!({})).await;
        assert_eq!(status, 201, "{body}");
        let consent_id = body["consent_id"].as_str().unwrap().to_owned();
        let state = self.state_sent_to_finexer(&consent_id).await;
        (consent_id, state)
    }

    /// The `state` in the return_url we gave Finexer for this consent.
    pub async fn state_sent_to_finexer(&self, consent_id: &str) -> String {
        let requests = self.finexer.received_requests().await.unwrap();
        let number: usize = consent_id.trim_start_matches("bc_").parse().unwrap();
        let creates: Vec<_> = requests
            .iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/consents")
            .collect();
        let body = std::str::from_utf8(&creates[number - 1].body).unwrap();
        let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let return_url = url::Url::parse(&form["return_url"]).unwrap();
        return_url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }
}

async fn mount_finexer(server: &MockServer, state: &FinexerState) {
    let base = server.uri();
    Mock::given(method("POST"))
        .and(path("/customers"))
        .respond_with({
            let state = state.clone();
            move |_: &wiremock::Request| {
                let n = state.next_id.fetch_add(1, Ordering::SeqCst);
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": format!("cus_{n}"), "object": "customer"}))
            }
        })
        .mount(server)
        .await;

    let consents_created = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/consents"))
        .respond_with({
            let state = state.clone();
            let base = base.clone();
            move |request: &wiremock::Request| {
                let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body)
                    .into_owned()
                    .collect();
                let n = consents_created.fetch_add(1, Ordering::SeqCst) + 1;
                let id = format!("bc_{n}");
                state.set(&id, "pending");
                ResponseTemplate::new(200).set_body_json(consent_json(
                    &id,
                    "pending",
                    form.get("provider").map(String::as_str),
                    &base,
                ))
            }
        })
        .mount(server)
        .await;

    Mock::given(method("GET"))
        .and(path_regex(r"^/consents/[^/]+$"))
        .respond_with({
            let state = state.clone();
            let base = base.clone();
            move |request: &wiremock::Request| {
                let id = request.url.path().trim_start_matches("/consents/");
                match state.status(id) {
                    Some(status) => ResponseTemplate::new(200).set_body_json(consent_json(
                        id,
                        &status,
                        Some("sandbox-barclays"),
                        &base,
                    )),
                    None => not_found(),
                }
            }
        })
        .mount(server)
        .await;

    // The consent update, as re-confirmation uses it.
    Mock::given(method("POST"))
        .and(path_regex(r"^/consents/[^/]+$"))
        .respond_with({
            let state = state.clone();
            let base = base.clone();
            move |request: &wiremock::Request| {
                let id = request.url.path().trim_start_matches("/consents/");
                let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body)
                    .into_owned()
                    .collect();
                match state.status(id).as_deref() {
                    Some("authorized") => {
                        let mut consent =
                            consent_json(id, "authorized", Some("sandbox-barclays"), &base);
                        consent["renewed_at"] = form.get("renewed_at").cloned().into();
                        consent["expiry_date"] = RENEWED_EXPIRY.into();
                        ResponseTemplate::new(200).set_body_json(consent)
                    }
                    Some(_) => ResponseTemplate::new(400).set_body_json(json!({"error": {
                        "type": "request_error", "code": "consent_not_authorized",
                        "message": "Only an authorized consent can be renewed"}})),
                    None => not_found(),
                }
            }
        })
        .mount(server)
        .await;

    Mock::given(method("POST"))
        .and(path_regex(r"^/consents/[^/]+/revoke$"))
        .respond_with({
            let state = state.clone();
            move |request: &wiremock::Request| {
                let id = request
                    .url
                    .path()
                    .trim_start_matches("/consents/")
                    .trim_end_matches("/revoke");
                if state.status(id).is_none() {
                    return not_found();
                }
                state.set(id, "canceled");
                ResponseTemplate::new(200).set_body_json(consent_json(id, "canceled", None, &base))
            }
        })
        .mount(server)
        .await;

    Mock::given(method("GET"))
        .and(path("/bank_accounts"))
        .respond_with(|request: &wiremock::Request| {
            let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
            let Some(customer) = query.get("customer") else {
                return ResponseTemplate::new(400).set_body_json(json!({"error": {
                    "type": "request_error", "code": "missing_identity", "message": "customer is required"}}));
            };
            let consent = query.get("consent").cloned().unwrap_or_else(|| "bc_1".into());
            ResponseTemplate::new(200).set_body_json(json!({
                "data": [{"id": format!("ba_{consent}"), "object": "bank_account",
                          "customer": customer, "consent": consent, "currency": "GBP"}],
                "count": 1, "paging": {"total": 1, "next": null, "prev": null}
            }))
        })
        .mount(server)
        .await;
}

fn not_found() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({"error": {
        "type": "request_error", "code": "resource_missing", "message": "No such consent"}}))
}

/// The expiry the mock's consent update answers.
pub const RENEWED_EXPIRY: &str = "2027-05-01T10:00:00Z";

pub fn consent_json(id: &str, status: &str, provider: Option<&str>, base: &str) -> Value {
    json!({
        "id": id, "object": "consent", "status": status, "provider": provider,
        "customer": "cus_0", "authed_at": if status == "authorized" { json!("2026-11-25T10:00:00Z") } else { Value::Null },
        "expiry_date": "2027-02-23T10:00:00Z",
        "redirect": {"return_url": CALLBACK, "consent_url": format!("{base}/connect/{id}")},
        "metadata": {}
    })
}

/// An API Gateway HTTP API (v2) event, as the Lambda runtime would hand it
/// to a function; `user` fills the JWT authorizer's claims.
pub fn event(
    method: &str,
    path: &str,
    query: &str,
    body: Option<&str>,
    user: Option<&str>,
) -> Value {
    // As API Gateway sends it: the route's key and path parameters.
    let (route_key, path_parameters) = shared::routes::event_fields(method, path);
    let mut context = json!({
        "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
        "domainPrefix": "api", "requestId": "req", "routeKey": route_key, "stage": "$default",
        "time": "25/Nov/2026:10:00:00 +0000", "timeEpoch": 1795600000000i64,
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                 "sourceIp": "192.0.2.1", "userAgent": "test"}
    });
    if let Some(user) = user {
        context["authorizer"] = json!({"jwt": {
            "claims": {"sub": user, "email": format!("{user}@example.com"), "name": format!("User {user}")},
            "scopes": null
        }});
    }
    json!({
        "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": query,
        "pathParameters": path_parameters,
        "headers": {"host": "api.example.com", "content-type": "application/json"},
        "requestContext": context,
        "body": body, "isBase64Encoded": false
    })
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

pub fn json_of(response: Response<Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
        Body::Binary(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    if status >= 400 {
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "errors are problems"
        );
        for field in ["type", "title", "status", "detail"] {
            assert!(body.get(field).is_some(), "problem without {field}: {body}");
        }
    }
    (status, body)
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
        now: &str,
        limit: usize,
        after: Option<&DueCursor>,
    ) -> shared::Result<DuePage> {
        self.inner.due(now, limit, after).await
    }
    async fn move_due(
        &self,
        c: &str,
        seen: &str,
        to: Option<&str>,
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
