//! `connect-bench`: every part of the benchmark that needs running processes,
//! and the report. Started by `scripts/bench.sh`, which builds the binaries,
//! starts moto, the Finexer sandbox and the local stack, and passes their
//! addresses in `BENCH_*` variables (see `Settings::from_env`).
//!
//! Parts: package size; memory and call counts (cold start + N warm
//! invocations per function); init time (round-robin starts of every function
//! and the hello-world); round trips (each outbound call logged by a counting
//! proxy that holds it for a fixed delay); throughput (wrk against the local
//! stack); webhook acknowledgement and reconciler throughput (the local
//! stack, `webhooks.rs`); the cold request over TLS, init against both
//! hello-worlds, and moto's own cost (`cold.rs`, `tls.rs`). The
//! request-overhead part is `bench-overhead`; its JSON is read here.

mod clients;
mod cold;
mod load;
mod proxy;
mod report;
mod tls;
mod webhooks;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use connect_benches::rounds::{Call, rounds};
use connect_testkit::Event;
use connect_testkit::lambda::{INIT_TIMEOUT, INVOKE_TIMEOUT, OTHER_USER as LIST_USER, USER};
use connect_testkit::runtime_api::{FunctionSpec, Outcome, Session};
use serde_json::Value;

use clients::{Http, state_of};
use proxy::{Proxy, Record};

// `USER` makes the links the callbacks and revokes use; `LIST_USER` owns a
// handful of consents, for `GET /consents`.

/// `POST /links` with an empty JSON object: the default return target.
fn create_link(user: &str, request_id: &str) -> Value {
    Event::post("/links")
        .user(user)
        .json(&serde_json::json!({}))
        .request_id(request_id)
        .to_json()
}

/// `GET /consents`: the user's consents.
fn list_consents(user: &str, request_id: &str) -> Value {
    Event::get("/consents")
        .user(user)
        .request_id(request_id)
        .to_json()
}

/// `GET /callback?fx_consent=..&state=..`, as the bank sends the browser back.
fn callback(consent_id: &str, state: &str) -> Event {
    Event::get("/callback").query_pairs(&[("fx_consent", consent_id), ("state", state)])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Hello,
    CreateLink,
    Callback,
    Revoke,
    Consents,
}

impl Kind {
    pub const FUNCTIONS: [Kind; 4] = [
        Kind::CreateLink,
        Kind::Callback,
        Kind::Revoke,
        Kind::Consents,
    ];
    pub const ALL: [Kind; 5] = [
        Kind::Hello,
        Kind::CreateLink,
        Kind::Callback,
        Kind::Revoke,
        Kind::Consents,
    ];

    /// The secret variables infra/template.yaml sets for the function.
    pub fn secrets(self) -> &'static [&'static str] {
        match self {
            Kind::Hello => &[],
            kind => connect_testkit::lambda::secret_variables(kind.binary()),
        }
    }

    /// How many secrets the measured route reads: each one configured,
    /// except for consents' listing, which calls no Finexer route.
    pub fn secrets_read(self) -> usize {
        match self {
            Kind::Consents => 0,
            kind => kind.secrets().len(),
        }
    }

    pub fn binary(self) -> &'static str {
        match self {
            Kind::Hello => "bench-hello",
            Kind::CreateLink => "create-link",
            Kind::Callback => "callback",
            Kind::Revoke => "revoke",
            Kind::Consents => "consents",
        }
    }

    /// The request each invocation sends, as the README's table names it.
    pub fn request(self) -> &'static str {
        match self {
            Kind::Hello => "any event (answers 200)",
            Kind::CreateLink => "`POST /links` `{}`, customer known",
            Kind::Callback => "`GET /callback?fx_consent&state`, consent authorized",
            Kind::Revoke => "`POST /consents/{id}/revoke` of an authorized consent",
            Kind::Consents => "`GET /consents` (user with 3 consents)",
        }
    }
}

pub struct Settings {
    pub bin_dir: PathBuf,
    pub size_dir: PathBuf,
    pub work_dir: PathBuf,
    pub out: PathBuf,
    pub overhead_json: Option<PathBuf>,
    pub moto: String,
    pub sandbox: String,
    pub local: String,
    pub local_sandbox: String,
    /// The local stack's demo frontend: its sign-in mints user tokens.
    pub local_demo: String,
    pub table: String,
    /// The local stack's secrets are `<prefix>/finexer-api-key`,
    /// `<prefix>/state-keys` and `<prefix>/webhook-secrets`.
    pub secret_prefix: String,
    pub starts: usize,
    pub warm: usize,
    pub rt_warm: usize,
    pub rt_delay: Duration,
    pub load_threads: u32,
    pub load_connections: u32,
    pub load_seconds: u32,
    pub load_latency_ms: u64,
    /// Signed events the webhook round delivers (each also redelivered).
    pub webhook_events: usize,
    pub webhook_concurrency: usize,
    /// Pending records the reconciler round makes due.
    pub reconcile_records: usize,
    pub commands: String,
    pub rustc: String,
    pub commit: String,
    pub skip: Vec<String>,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        let opt =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        let num = |name: &str, default: u64| -> Result<u64, String> {
            opt(name, &default.to_string())
                .parse()
                .map_err(|_| format!("{name} must be a whole number"))
        };
        let loopback = |name: &str| -> Result<String, String> {
            let url = var(name)?;
            if !url.starts_with("http://127.0.0.1:") {
                return Err(format!("{name} must be http://127.0.0.1:<port>, not {url}"));
            }
            Ok(url.trim_end_matches('/').to_owned())
        };
        Ok(Settings {
            bin_dir: var("BENCH_BIN_DIR")?.into(),
            size_dir: var("BENCH_SIZE_DIR")?.into(),
            work_dir: var("BENCH_WORK_DIR")?.into(),
            out: var("BENCH_OUT")?.into(),
            overhead_json: std::env::var("BENCH_OVERHEAD_JSON").ok().map(PathBuf::from),
            moto: loopback("BENCH_MOTO_URL")?,
            sandbox: loopback("BENCH_SANDBOX_URL")?,
            local: loopback("BENCH_LOCAL_URL")?,
            local_sandbox: loopback("BENCH_LOCAL_SANDBOX_URL")?,
            local_demo: loopback("BENCH_LOCAL_DEMO_URL")?,
            table: opt("BENCH_TABLE", "connect-local"),
            secret_prefix: opt("BENCH_SECRET_PREFIX", "connect-local"),
            starts: num("BENCH_STARTS", 21)?.clamp(1, 1000) as usize,
            warm: num("BENCH_WARM", 1000)?.clamp(1, 100_000) as usize,
            rt_warm: num("BENCH_RT_WARM", 5)?.clamp(1, 100) as usize,
            rt_delay: Duration::from_millis(num("BENCH_RT_DELAY_MS", 20)?.clamp(1, 1000)),
            load_threads: num("BENCH_LOAD_THREADS", 2)?.clamp(1, 16) as u32,
            load_connections: num("BENCH_LOAD_CONNECTIONS", 16)?.clamp(1, 256) as u32,
            load_seconds: num("BENCH_LOAD_SECONDS", 10)?.clamp(1, 300) as u32,
            load_latency_ms: num("BENCH_LOAD_LATENCY_MS", 50)?,
            webhook_events: num("BENCH_WEBHOOKS", 200)?.clamp(1, 10_000) as usize,
            webhook_concurrency: num("BENCH_WEBHOOK_CONCURRENCY", 8)?.clamp(1, 256) as usize,
            reconcile_records: num("BENCH_RECONCILE_RECORDS", 1000)?.clamp(1, 100_000) as usize,
            commands: opt("BENCH_COMMANDS", "scripts/bench.sh"),
            rustc: opt("BENCH_RUSTC", "unknown"),
            commit: opt("BENCH_COMMIT", "unknown"),
            skip: opt("BENCH_SKIP", "")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    fn skips(&self, part: &str) -> bool {
        self.skip.iter().any(|s| s == part)
    }

    /// The functions' production configuration, pointed at local services.
    fn spec(&self, kind: Kind, finexer: &str, aws: &str) -> FunctionSpec {
        let home = self.work_dir.join("home");
        let mut env: Vec<(String, String)> = [
            ("CONSENT_TABLE", self.table.as_str()),
            ("CALLBACK_URL", "http://127.0.0.1:3000/callback"),
            ("FRONTEND_URLS", "http://127.0.0.1:3000/connected"),
            ("FINEXER_BASE_URL", finexer),
            // As infra/template.yaml and the functions' deploy metadata set them.
            ("FINEXER_TIMEOUT_MS", "5000"),
            ("SECRETS_CACHE_SECONDS", "300"),
            ("STATE_TTL_SECONDS", "900"),
            // The harness's user makes a link in every round and never
            // finishes most of them: the per-user cap would refuse it.
            ("MAX_PENDING_LINKS", "1000"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "eu-west-2"),
            ("AWS_DEFAULT_REGION", "eu-west-2"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_ENDPOINT_URL", aws),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.push(("HOME".into(), home.display().to_string()));
        // BENCH_RUST_LOG: the functions' RUST_LOG, to look inside a run
        // (e.g. `shared::prefetch=debug`); logging costs time, so not by default.
        if let Ok(directives) = std::env::var("BENCH_RUST_LOG") {
            env.push(("RUST_LOG".into(), directives));
        }
        // The local stack's secrets, each given only to the functions that
        // infra/template.yaml gives it to: a secret configured is a secret
        // the start-up prefetch fetches, and the cold request would pay for
        // one that production never fetches.
        for &variable in kind.secrets() {
            let name = match variable {
                "STATE_KEYS_SECRET_ID" => "state-keys",
                "WEBHOOK_SECRETS_SECRET_ID" => "webhook-secrets",
                _ => "finexer-api-key",
            };
            env.push((variable.into(), format!("{}/{name}", self.secret_prefix)));
        }
        FunctionSpec {
            name: kind.binary().to_owned(),
            binary: self.bin_dir.join(kind.binary()),
            env,
        }
    }
}

/// Consents moving through the journey between the functions' runs.
#[derive(Default)]
struct Pool {
    /// Created by create-link, not yet approved at the sandbox.
    created: Vec<String>,
    /// Approved at the sandbox, with their state: ready for the callback.
    ready: VecDeque<(String, String)>,
    /// Authorized in our store by the callback: ready to be revoked.
    authorized: VecDeque<String>,
}

/// One invocation as the harness judged it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub ms: f64,
    pub ok: bool,
    pub detail: String,
}

fn event_for(kind: Kind, pool: &mut Pool, n: usize) -> Result<Value, String> {
    let request_id = format!("bench-{n}");
    Ok(match kind {
        Kind::Hello => list_consents(USER, &request_id),
        Kind::CreateLink => create_link(USER, &request_id),
        Kind::Callback => {
            let (consent, state) = pool
                .ready
                .pop_front()
                .ok_or("no approved consent left for the callback")?;
            callback(&consent, &state).request_id(&request_id).to_json()
        }
        Kind::Revoke => {
            let consent = pool
                .authorized
                .pop_front()
                .ok_or("no authorized consent left to revoke")?;
            Event::post(&format!("/consents/{consent}/revoke"))
                .user(USER)
                .request_id(&request_id)
                .to_json()
        }
        Kind::Consents => list_consents(LIST_USER, &request_id),
    })
}

/// Checks the answer and moves the consent along the journey.
fn judge(kind: Kind, event: &Value, outcome: &Outcome, pool: &mut Pool) -> Invocation {
    let ms = outcome.duration.as_secs_f64() * 1000.0;
    let fail = |detail: String| Invocation {
        ms,
        ok: false,
        detail,
    };
    if outcome.error {
        return fail(format!("error: {}", String::from_utf8_lossy(&outcome.body)));
    }
    let Some((status, response)) = outcome.http() else {
        return fail(format!(
            "not an HTTP response: {}",
            String::from_utf8_lossy(&outcome.body)
        ));
    };
    let body: Value = response["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    let expected = match kind {
        Kind::Hello | Kind::Revoke | Kind::Consents => 200,
        Kind::CreateLink => 201,
        Kind::Callback => 303,
    };
    if status != expected {
        return fail(format!("HTTP {status}: {}", response["body"]));
    }
    match kind {
        Kind::CreateLink => match body["consent_id"].as_str() {
            Some(id) => pool.created.push(id.to_owned()),
            None => return fail("no consent_id".into()),
        },
        Kind::Callback => {
            let location = response["headers"]["location"].as_str().unwrap_or_default();
            if !location.contains("status=authorized") {
                return fail(format!("redirected to {location}"));
            }
            let query = event["rawQueryString"].as_str().unwrap_or_default();
            let consent = query
                .split('&')
                .find_map(|p| p.strip_prefix("fx_consent="))
                .unwrap_or_default();
            pool.authorized.push_back(consent.to_owned());
        }
        Kind::Revoke if body["status"] != "canceled" => {
            return fail(format!("status {}", body["status"]));
        }
        _ => {}
    }
    Invocation {
        ms,
        ok: true,
        detail: String::new(),
    }
}

/// Reads each created consent's state from the sandbox and approves it there.
async fn harvest(http: &Http, sandbox: &str, pool: &mut Pool) -> Result<(), String> {
    for id in std::mem::take(&mut pool.created) {
        let consent = http.sandbox_consent(sandbox, &id).await?;
        let state = state_of(&consent).ok_or_else(|| format!("no state in {id}'s return_url"))?;
        http.sandbox_authorize(sandbox, &id).await?;
        pool.ready.push_back((id, state));
    }
    Ok(())
}

/// One container's life: start, wait for init, invoke `count` times.
pub struct Life {
    pub init_ms: Option<f64>,
    pub invocations: Vec<Invocation>,
    pub peak_rss_kib: Option<u64>,
    pub failure: Option<String>,
    /// Proxy records per invocation (when proxied).
    pub calls: Vec<Vec<Record>>,
}

impl Life {
    pub fn errors(&self) -> usize {
        self.invocations.iter().filter(|i| !i.ok).count() + usize::from(self.failure.is_some())
    }

    pub fn first_error(&self) -> Option<String> {
        self.failure.clone().or_else(|| {
            self.invocations
                .iter()
                .find(|i| !i.ok)
                .map(|i| i.detail.clone())
        })
    }
}

struct Proxies {
    finexer: Proxy,
    aws: Proxy,
}

impl Proxies {
    fn take(&self) -> Vec<Record> {
        let mut all = self.finexer.take();
        all.extend(self.aws.take());
        all.sort_by_key(|r| r.start_us);
        all
    }
}

async fn live(
    settings: &Settings,
    kind: Kind,
    count: usize,
    pool: &mut Pool,
    proxies: Option<&Proxies>,
    log_name: &str,
) -> Life {
    let (finexer, aws) = match proxies {
        Some(p) => (p.finexer.url(), p.aws.url()),
        None => (settings.sandbox.clone(), settings.moto.clone()),
    };
    let spec = settings.spec(kind, &finexer, &aws);
    let log = settings
        .work_dir
        .join("logs")
        .join(format!("{log_name}.log"));
    let mut life = Life {
        init_ms: None,
        invocations: Vec::new(),
        peak_rss_kib: None,
        failure: None,
        calls: Vec::new(),
    };
    if let Some(p) = proxies {
        p.take();
    }
    let mut session = match Session::start(&spec, &log).await {
        Ok(s) => s,
        Err(e) => {
            life.failure = Some(e);
            return life;
        }
    };
    match session.ready(INIT_TIMEOUT).await {
        Ok(init) => life.init_ms = Some(init.as_secs_f64() * 1000.0),
        Err(e) => {
            life.failure = Some(format!("{e} (log: {})", log.display()));
            session.stop().await;
            return life;
        }
    }
    for n in 0..count {
        let event = match event_for(kind, pool, n) {
            Ok(e) => e,
            Err(e) => {
                life.failure = Some(e);
                break;
            }
        };
        match session.invoke(&event, INVOKE_TIMEOUT).await {
            Ok(outcome) => life.invocations.push(judge(kind, &event, &outcome, pool)),
            Err(e) => {
                life.failure = Some(format!("{e} (log: {})", log.display()));
                break;
            }
        }
        if let Some(p) = proxies {
            life.calls.push(p.take());
        }
    }
    life.peak_rss_kib = session.peak_rss_kib().ok();
    session.stop().await;
    life
}

/// Per function: the memory run's life and its call counts.
pub struct MemoryResult {
    pub kind: Kind,
    pub life: Life,
    pub ops: BTreeMap<String, usize>,
}

pub struct InitResult {
    pub kind: Kind,
    pub lives: Vec<Life>,
}

pub struct RoundTrip {
    pub kind: Kind,
    /// Rounds (each a list of calls) of the cold invocation and of each warm one.
    pub cold: Vec<Vec<Call>>,
    pub warm: Vec<Vec<Vec<Call>>>,
    pub warm_ms: Vec<f64>,
    pub secret_fetches: usize,
    pub sandbox_log_finexer_calls: usize,
    pub proxy_finexer_calls: usize,
    pub errors: usize,
    pub first_error: Option<String>,
}

pub struct LoadResult {
    pub name: &'static str,
    pub result: Result<Value, String>,
    pub prepared: Option<usize>,
}

#[derive(Default)]
pub struct Results {
    pub memory: Vec<MemoryResult>,
    pub init: Vec<InitResult>,
    pub round_trips: Vec<RoundTrip>,
    pub load: Vec<LoadResult>,
    pub webhooks: Option<webhooks::WebhookResults>,
    pub cold: Option<cold::ColdResults>,
    pub notes: Vec<String>,
}

/// The local stack creates the table and the secret before it serves: once it
/// answers, both exist.
async fn wait_for_local_stack(settings: &Settings, http: &Http) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..120 {
        match http.local_token(&settings.local_demo, "probe").await {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "the local stack did not answer within 60 s: {last}"
    ))
}

async fn prime(settings: &Settings) -> Result<(), String> {
    // Customers are created on first use: make both users known, and give the
    // list user three consents.
    let mut pool = Pool::default();
    let spec = settings.spec(Kind::CreateLink, &settings.sandbox, &settings.moto);
    let log = settings.work_dir.join("logs").join("prime.log");
    let mut session = Session::start(&spec, &log).await?;
    session.ready(INIT_TIMEOUT).await?;
    let mut events = vec![create_link(USER, "prime-0")];
    for n in 1..=3 {
        events.push(create_link(LIST_USER, &format!("prime-{n}")));
    }
    for event in events {
        let outcome = session.invoke(&event, INVOKE_TIMEOUT).await?;
        let judged = judge(Kind::CreateLink, &event, &outcome, &mut pool);
        if !judged.ok {
            session.stop().await;
            return Err(format!("priming create-link failed: {}", judged.detail));
        }
    }
    session.stop().await;
    Ok(())
}

async fn memory_part(
    settings: &Settings,
    http: &Http,
    proxies: &Proxies,
    results: &mut Results,
) -> Result<(), String> {
    proxies.finexer.set_delay(Duration::ZERO);
    proxies.aws.set_delay(Duration::ZERO);
    let mut pool = Pool::default();
    for kind in [
        Kind::CreateLink,
        Kind::Callback,
        Kind::Revoke,
        Kind::Consents,
        Kind::Hello,
    ] {
        eprintln!(
            "memory: {} (cold + {} warm invocations)",
            kind.binary(),
            settings.warm
        );
        if kind == Kind::Callback {
            harvest(http, &settings.sandbox, &mut pool).await?;
        }
        let life = live(
            settings,
            kind,
            settings.warm + 1,
            &mut pool,
            Some(proxies),
            &format!("memory-{}", kind.binary()),
        )
        .await;
        let mut ops = BTreeMap::new();
        for record in life.calls.iter().flatten() {
            *ops.entry(format!("{} {}", record.upstream, record.op))
                .or_insert(0) += 1;
        }
        results.memory.push(MemoryResult { kind, life, ops });
    }
    Ok(())
}

async fn init_part(settings: &Settings, http: &Http, results: &mut Results) -> Result<(), String> {
    let mut pool = Pool::default();
    let mut by_kind: BTreeMap<Kind, Vec<Life>> = BTreeMap::new();
    for round in 0..settings.starts {
        eprintln!("init: round {} of {}", round + 1, settings.starts);
        for kind in Kind::ALL {
            if kind == Kind::Callback {
                harvest(http, &settings.sandbox, &mut pool).await?;
            }
            let life = live(
                settings,
                kind,
                2,
                &mut pool,
                None,
                &format!("init-{}", kind.binary()),
            )
            .await;
            by_kind.entry(kind).or_default().push(life);
        }
    }
    results.init = by_kind
        .into_iter()
        .map(|(kind, lives)| InitResult { kind, lives })
        .collect();
    Ok(())
}

async fn round_trip_part(
    settings: &Settings,
    http: &Http,
    proxies: &Proxies,
    results: &mut Results,
) -> Result<(), String> {
    proxies.finexer.set_delay(settings.rt_delay);
    proxies.aws.set_delay(settings.rt_delay);
    let mut pool = Pool::default();
    for kind in Kind::FUNCTIONS {
        eprintln!("round trips: {}", kind.binary());
        if kind == Kind::Callback {
            harvest(http, &settings.sandbox, &mut pool).await?;
        }
        // The cold invocation runs first in its own life; the sandbox's own
        // log is read for the warm ones only.
        let (finexer, aws) = (proxies.finexer.url(), proxies.aws.url());
        let spec = settings.spec(kind, &finexer, &aws);
        let log = settings
            .work_dir
            .join("logs")
            .join(format!("rt-{}.log", kind.binary()));
        proxies.take();
        let mut session = Session::start(&spec, &log).await?;
        session.ready(INIT_TIMEOUT).await?;
        let mut rt = RoundTrip {
            kind,
            cold: Vec::new(),
            warm: Vec::new(),
            warm_ms: Vec::new(),
            secret_fetches: 0,
            sandbox_log_finexer_calls: 0,
            proxy_finexer_calls: 0,
            errors: 0,
            first_error: None,
        };
        let mut all_records: Vec<Record> = Vec::new();
        for n in 0..=settings.rt_warm {
            if n == 1 {
                http.sandbox_clear_log(&settings.sandbox).await?;
            }
            let event = event_for(kind, &mut pool, n)?;
            let outcome = session.invoke(&event, INVOKE_TIMEOUT).await?;
            let judged = judge(kind, &event, &outcome, &mut pool);
            if !judged.ok {
                rt.errors += 1;
                rt.first_error.get_or_insert(judged.detail.clone());
            }
            let records = proxies.take();
            let calls: Vec<Call> = records.iter().map(Record::call).collect();
            let grouped = rounds(&calls);
            if n == 0 {
                rt.cold = grouped;
            } else {
                rt.proxy_finexer_calls +=
                    records.iter().filter(|r| r.upstream == "Finexer").count();
                rt.warm.push(grouped);
                rt.warm_ms.push(judged.ms);
            }
            all_records.extend(records);
        }
        rt.sandbox_log_finexer_calls = http.sandbox_log(&settings.sandbox).await?.len();
        rt.secret_fetches = all_records
            .iter()
            .filter(|r| r.op.contains("GetSecretValue"))
            .count();
        session.stop().await;
        results.round_trips.push(rt);
    }
    proxies.finexer.set_delay(Duration::ZERO);
    proxies.aws.set_delay(Duration::ZERO);
    Ok(())
}

/// wrk against one route of the local stack, within the settings' bounds.
async fn load_route(settings: &Settings, route: &str, script: &Path) -> Result<Value, String> {
    let url = format!("{}{route}", settings.local);
    load::run(&load::LoadSpec {
        url: &url,
        threads: settings.load_threads,
        connections: settings.load_connections,
        seconds: settings.load_seconds,
        script,
    })
    .await
}

/// Users the create-link load spreads its requests over.
const LOAD_USERS: usize = 8;

/// `exclude`: consents other parts created at the local sandbox, which stay
/// pending there and are not the load's to call back.
async fn load_part(
    settings: &Settings,
    http: &Http,
    exclude: &HashSet<String>,
    results: &mut Results,
) -> Result<(), String> {
    // Eight users, each under the cap on pending links (MAX_PENDING_LINKS,
    // raised by scripts/bench.sh): the load measures the route, not the cap.
    let mut tokens = Vec::new();
    for user in 0..LOAD_USERS {
        let token = http
            .local_token(&settings.local_demo, &format!("load-user-{user}"))
            .await?;
        // The user's customer is created on first use: not part of the load.
        http.local_create_link(&settings.local, &token).await?;
        tokens.push(token);
    }
    let dir = settings.work_dir.join("load");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

    eprintln!(
        "throughput: create-link, {} connections, {} s",
        settings.load_connections, settings.load_seconds
    );
    let script = dir.join("create_link.lua");
    std::fs::write(&script, load::create_link_script(&tokens)).map_err(|e| e.to_string())?;
    let created = load_route(settings, "/links", &script).await;
    results.load.push(LoadResult {
        name: "create-link",
        result: created,
        prepared: None,
    });

    // Every consent the load created, approved, becomes one genuine callback.
    let pending = http.sandbox_pending(&settings.local_sandbox).await?;
    let mut paths = Vec::new();
    for consent in &pending {
        let (Some(id), Some(state)) = (consent["id"].as_str(), state_of(consent)) else {
            continue;
        };
        if exclude.contains(id) {
            continue;
        }
        http.sandbox_authorize(&settings.local_sandbox, id).await?;
        let query = callback(id, &state).to_json()["rawQueryString"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        paths.push(format!("/callback?{query}"));
    }
    if paths.is_empty() {
        results.load.push(LoadResult {
            name: "callback",
            result: Err("the create-link load left no consent to call back".into()),
            prepared: Some(0),
        });
        return Ok(());
    }
    eprintln!(
        "throughput: callback, {} connections, at most {} s, {} states",
        settings.load_connections,
        settings.load_seconds,
        paths.len()
    );
    let paths_file = dir.join("callback_paths.txt");
    std::fs::write(&paths_file, paths.join("\n") + "\n").map_err(|e| e.to_string())?;
    let script = dir.join("callback.lua");
    std::fs::write(
        &script,
        load::callback_script(&paths_file, settings.load_threads),
    )
    .map_err(|e| e.to_string())?;
    let result = load_route(settings, "/callback", &script).await;
    results.load.push(LoadResult {
        name: "callback",
        result,
        prepared: Some(paths.len()),
    });
    Ok(())
}

async fn run(settings: &Settings) -> Result<Results, String> {
    for dir in ["logs", "home"] {
        std::fs::create_dir_all(settings.work_dir.join(dir)).map_err(|e| e.to_string())?;
    }
    let http = Http::new()?;
    let mut results = Results::default();
    let proxies = Proxies {
        finexer: Proxy::start("Finexer", &settings.sandbox).await?,
        aws: Proxy::start("AWS", &settings.moto).await?,
    };

    wait_for_local_stack(settings, &http).await?;
    eprintln!("priming: customers for the bench users");
    prime(settings).await?;
    // First, while the functions' table is small (moto's Query time grows
    // with it: this part measures how much).
    if !settings.skips("cold") {
        results.cold = Some(cold::run(settings, &http, &proxies).await?);
    }
    if !settings.skips("memory") {
        memory_part(settings, &http, &proxies, &mut results).await?;
    }
    if !settings.skips("init") {
        init_part(settings, &http, &mut results).await?;
    }
    if !settings.skips("roundtrips") {
        round_trip_part(settings, &http, &proxies, &mut results).await?;
    }
    // Before the load, so that the reconciler's due records are only its own.
    let mut exclude = HashSet::new();
    if !(settings.skips("webhooks") && settings.skips("reconcile")) {
        let done = webhooks::run(
            settings,
            &http,
            settings.skips("webhooks"),
            settings.skips("reconcile"),
        )
        .await;
        exclude.extend(done.consents.iter().cloned());
        results.webhooks = Some(done);
    }
    if !settings.skips("load")
        && let Err(e) = load_part(settings, &http, &exclude, &mut results).await
    {
        results.notes.push(format!("throughput part failed: {e}"));
    }
    Ok(results)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("connect-bench: {e} (run it through scripts/bench.sh)");
            return std::process::ExitCode::FAILURE;
        }
    };
    let load_before = report::loadavg();
    let started = std::time::Instant::now();
    let results = match run(&settings).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("connect-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let text = report::render(&settings, &results, &load_before, started.elapsed());
    if let Err(e) = std::fs::write(&settings.out, &text) {
        eprintln!(
            "connect-bench: cannot write {}: {e}",
            settings.out.display()
        );
        return std::process::ExitCode::FAILURE;
    }
    eprintln!("wrote {}", settings.out.display());
    std::process::ExitCode::SUCCESS
}
