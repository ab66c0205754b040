//! The cold request over TLS, init measured fairly, and moto's own cost.
//!
//! - **Cold request**: moto and the sandbox behind local TLS endpoints
//!   (`tls.rs`: a test CA, a terminator, `BENCH_COLD_ONE_WAY_MS` of latency
//!   each way), the functions trusting the CA through `AWS_CA_BUNDLE` and
//!   `FINEXER_CA_BUNDLE`. Each round starts, interleaved, the hello-world and
//!   create-link, callback and consents with the start-up prefetch on and
//!   off (their order alternating by round), each with its first event
//!   handed over as soon as it asks (as on Lambda), then three warm ones.
//! - **Init**: spawn to the first `GET /next` for both hello-worlds and the
//!   three functions with the prefetch on and off, `BENCH_INIT_RUNS` runs of
//!   `BENCH_INIT_STARTS` round-robin starts; a run's figure is its median,
//!   the result the median of the runs'.
//! - **moto**: the time of moto's `Query` on the `by_owner` index (the one
//!   `GET /consents` makes) against the table's size, on a table of its own,
//!   and on the functions' table as the cold part left it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use connect_benches::stats::median;
use connect_testkit::lambda::{INIT_TIMEOUT, INVOKE_TIMEOUT, OTHER_USER as LIST_USER};
use connect_testkit::runtime_api::{FunctionSpec, Session};
use serde_json::{Value, json};

use crate::clients::Http;
use crate::tls::{Endpoint, TestCa};
use crate::{Kind, Pool, Proxies, Settings, event_for, harvest, judge};

/// Warm invocations after each cold one.
const WARM: usize = 3;
/// The functions measured, each with the prefetch on and off.
const FUNCTIONS: [Kind; 3] = [Kind::CreateLink, Kind::Callback, Kind::Consents];
/// The goal: the cold first response at most three round trips (TCP, TLS
/// 1.3, the secret) slower than a warm one.
const EXTRA_ROUND_TRIPS: f64 = 3.0;
/// The goal: init with the prefetch within 5% of init without it.
const INIT_PREFETCH_GOAL: f64 = 1.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    Hello,
    HelloCurrentThread,
    Function(Kind, bool),
    /// A function built with `-C relocation-model=static` (no PIE), prefetch on.
    NoPie(Kind),
}

impl Variant {
    pub fn name(self) -> String {
        match self {
            Variant::Hello => "hello-world (multi-thread, `cargo lambda new`)".into(),
            Variant::HelloCurrentThread => "hello-world (`current_thread`)".into(),
            Variant::Function(kind, true) => format!("{}, prefetch on", kind.binary()),
            Variant::Function(kind, false) => format!("{}, prefetch off", kind.binary()),
            Variant::NoPie(kind) => format!("{}, prefetch on, no PIE (not shipped)", kind.binary()),
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Variant::Hello => "bench-hello",
            Variant::HelloCurrentThread => "bench-hello-current-thread",
            Variant::Function(kind, _) | Variant::NoPie(kind) => kind.binary(),
        }
    }

    fn kind(self) -> Kind {
        match self {
            Variant::Function(kind, _) | Variant::NoPie(kind) => kind,
            _ => Kind::Hello,
        }
    }
}

/// One cold start as measured.
#[derive(Debug, Default, Clone)]
pub struct ColdStart {
    pub init_ms: f64,
    /// Spawn to the first response.
    pub spawn_to_first_ms: f64,
    /// The first invocation alone: event handed out to response posted.
    pub first_ms: f64,
    /// The median of the warm invocations after it.
    pub warm_ms: f64,
    /// The process's CPU time (user + system, every thread) from its first
    /// `GET /next` to its first response.
    pub first_cpu_ms: f64,
}

#[derive(Default)]
pub struct ColdResults {
    pub one_way: Duration,
    pub starts: BTreeMap<Variant, Vec<ColdStart>>,
    pub failures: Vec<String>,
    /// Per variant, each run's median init (ms).
    pub init_runs: BTreeMap<Variant, Vec<f64>>,
    pub init_starts: usize,
    /// A new TLS connection to the AWS endpoint and one `GetSecretValue`,
    /// from the harness, once per round (ms): the floor of a first request
    /// that needs a secret before anything else.
    pub secret_floor: Vec<f64>,
    /// (items in the table, moto's Query median ms, runs).
    pub moto_query: Vec<(usize, f64, usize)>,
    /// The functions' table after the cold part: items, and moto's Query
    /// for the list user on it (median ms).
    pub bench_table: Option<(usize, f64)>,
    pub ca_path: String,
}

struct Env {
    aws: Endpoint,
    finexer: Endpoint,
    ca: String,
    /// Where the no-PIE build is (`BENCH_NO_PIE_DIR`), if there is one.
    no_pie_dir: Option<std::path::PathBuf>,
}

impl Env {
    fn spec(&self, settings: &Settings, variant: Variant) -> FunctionSpec {
        let mut spec = settings.spec(variant.kind(), &self.finexer.url, &self.aws.url);
        spec.name = variant.binary().to_owned();
        spec.binary = settings.bin_dir.join(variant.binary());
        if let (Variant::NoPie(_), Some(dir)) = (variant, &self.no_pie_dir) {
            spec.binary = dir.join(variant.binary());
        }
        let prefetch = matches!(variant, Variant::Function(_, true) | Variant::NoPie(_));
        spec.env.extend([
            ("AWS_CA_BUNDLE".to_owned(), self.ca.clone()),
            ("FINEXER_CA_BUNDLE".to_owned(), self.ca.clone()),
            ("STARTUP_PREFETCH".to_owned(), prefetch.to_string()),
        ]);
        spec
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn run(
    settings: &Settings,
    http: &Http,
    proxies: &Proxies,
) -> Result<ColdResults, String> {
    let one_way =
        Duration::from_millis(std::env::var("BENCH_COLD_ONE_WAY_MS").map_or(Ok(10), |v| {
            v.parse::<u64>()
                .map_err(|_| "BENCH_COLD_ONE_WAY_MS must be a whole number")
        })?);
    let port = |name: &str, default: u16| -> Result<u16, String> {
        std::env::var(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{name} must be a port"))
        })
    };
    // Four ports from BENCH_TLS_PORT (0: any free ones).
    let base = port("BENCH_TLS_PORT", 0)?;
    let at = |offset: u16| if base == 0 { 0 } else { base + offset };
    let ca = TestCa::create(&settings.work_dir.join("tls"))?;
    proxies.aws.set_delay(Duration::ZERO);
    proxies.finexer.set_delay(Duration::ZERO);
    let env = Env {
        aws: Endpoint::start(&ca, at(0), at(1), proxies.aws.addr, one_way).await?,
        finexer: Endpoint::start(&ca, at(2), at(3), proxies.finexer.addr, one_way).await?,
        ca: ca.pem_path.display().to_string(),
        no_pie_dir: std::env::var_os("BENCH_NO_PIE_DIR").map(Into::into),
    };
    let mut results = ColdResults {
        one_way,
        ca_path: env.ca.clone(),
        ..Default::default()
    };
    let functions = measured_functions()?;
    cold_part(settings, http, proxies, &env, &functions, &mut results).await?;
    // BENCH_SKIP=cold-init,cold-moto: only the cold request, for a quick look.
    if !settings.skips("cold-init") {
        init_part(settings, proxies, &env, &functions, &mut results).await?;
    }
    if !settings.skips("cold-moto") {
        moto_part(settings, &mut results).await?;
    }
    Ok(results)
}

/// `BENCH_COLD_FUNCTIONS` (binary names, comma-separated) narrows the
/// functions measured, to look at one; every one by default. The callback
/// needs create-link's links.
fn measured_functions() -> Result<Vec<Kind>, String> {
    let Ok(names) = std::env::var("BENCH_COLD_FUNCTIONS") else {
        return Ok(FUNCTIONS.to_vec());
    };
    let kinds: Vec<Kind> = names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            FUNCTIONS
                .into_iter()
                .find(|kind| kind.binary() == name)
                .ok_or_else(|| format!("BENCH_COLD_FUNCTIONS: {name} is not one of {FUNCTIONS:?}"))
        })
        .collect::<Result<_, _>>()?;
    if kinds.contains(&Kind::Callback) && !kinds.contains(&Kind::CreateLink) {
        return Err(
            "BENCH_COLD_FUNCTIONS: the callback's links come from create-link; add it".into(),
        );
    }
    Ok(kinds)
}

async fn cold_part(
    settings: &Settings,
    http: &Http,
    proxies: &Proxies,
    env: &Env,
    functions: &[Kind],
    results: &mut ColdResults,
) -> Result<(), String> {
    let mut pool = Pool::default();
    for round in 0..settings.starts {
        eprintln!(
            "cold request over TLS: round {} of {}",
            round + 1,
            settings.starts
        );
        let mut order = vec![Variant::Hello];
        for &kind in functions {
            let (a, b) = if round % 2 == 0 {
                (true, false)
            } else {
                (false, true)
            };
            order.push(Variant::Function(kind, a));
            order.push(Variant::Function(kind, b));
        }
        match secret_on_new_connection(settings, env).await {
            Ok(took) => results.secret_floor.push(ms(took)),
            Err(e) => results
                .failures
                .push(format!("secret floor (round {}): {e}", round + 1)),
        }
        for variant in order {
            if variant.kind() == Kind::Callback && pool.ready.len() < WARM + 1 {
                harvest(http, &settings.sandbox, &mut pool).await?;
            }
            match cold_start(settings, env, variant, &mut pool).await {
                Ok(start) => results.starts.entry(variant).or_default().push(start),
                Err(e) => {
                    results
                        .failures
                        .push(format!("{} (round {}): {e}", variant.name(), round + 1))
                }
            }
            proxies.take();
        }
    }
    Ok(())
}

/// The time of one `GetSecretValue` on a new TLS connection through the
/// same terminator and latency line the functions use: TCP, TLS 1.3 and the
/// request, with moto's answer (unsigned: moto reads only the region).
async fn secret_on_new_connection(settings: &Settings, env: &Env) -> Result<Duration, String> {
    let pem = std::fs::read(&env.ca).map_err(|e| format!("{}: {e}", env.ca))?;
    let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string())?;
    // A client of its own: a new connection, as a cold process has.
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let answer = client
        .post(&env.aws.url)
        .header("x-amz-target", "secretsmanager.GetSecretValue")
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-2/secretsmanager/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .body(json!({"SecretId": format!("{}/state-keys", settings.secret_prefix)}).to_string())
        .send()
        .await
        .map_err(|e| format!("GetSecretValue: {e}"))?;
    let status = answer.status();
    answer.bytes().await.map_err(|e| e.to_string())?;
    let took = started.elapsed();
    if !status.is_success() {
        return Err(format!("GetSecretValue: HTTP {status}"));
    }
    Ok(took)
}

async fn cold_start(
    settings: &Settings,
    env: &Env,
    variant: Variant,
    pool: &mut Pool,
) -> Result<ColdStart, String> {
    let spec = env.spec(settings, variant);
    let log = settings
        .work_dir
        .join("logs")
        .join(format!("cold-{}.log", spec.name));
    let mut session = Session::start(&spec, &log).await?;
    let outcome = async {
        let init = session.ready(INIT_TIMEOUT).await?;
        let cpu_before = session.cpu_time()?;
        let event = event_for(variant.kind(), pool, 0)?;
        let first = session.invoke(&event, INVOKE_TIMEOUT).await?;
        let spawn_to_first = session.spawned_at().elapsed();
        let cpu = session.cpu_time()? - cpu_before;
        let judged = judge(variant.kind(), &event, &first, pool);
        if !judged.ok {
            return Err(format!("first invocation: {}", judged.detail));
        }
        let mut warm = Vec::new();
        for n in 1..=WARM {
            let event = event_for(variant.kind(), pool, n)?;
            let outcome = session.invoke(&event, INVOKE_TIMEOUT).await?;
            let judged = judge(variant.kind(), &event, &outcome, pool);
            if !judged.ok {
                return Err(format!("warm invocation {n}: {}", judged.detail));
            }
            warm.push(judged.ms);
        }
        Ok(ColdStart {
            init_ms: ms(init),
            spawn_to_first_ms: ms(spawn_to_first),
            first_ms: ms(first.duration),
            warm_ms: median(&warm).unwrap_or(f64::NAN),
            first_cpu_ms: ms(cpu),
        })
    }
    .await;
    session.stop().await;
    outcome.map_err(|e| format!("{e} (log: {})", log.display()))
}

async fn init_part(
    settings: &Settings,
    proxies: &Proxies,
    env: &Env,
    functions: &[Kind],
    results: &mut ColdResults,
) -> Result<(), String> {
    let runs = num("BENCH_INIT_RUNS", 5)?;
    let starts = num("BENCH_INIT_STARTS", 21)?;
    results.init_starts = starts;
    let mut variants = vec![Variant::Hello, Variant::HelloCurrentThread];
    for &kind in functions {
        variants.push(Variant::Function(kind, true));
        variants.push(Variant::Function(kind, false));
    }
    if env.no_pie_dir.is_some() {
        variants.push(Variant::NoPie(Kind::CreateLink));
    }
    for run in 0..runs {
        eprintln!("init: run {} of {runs} ({starts} starts of each)", run + 1);
        let mut samples: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
        for start in 0..starts {
            // Rotated, so that no variant always follows the same one.
            let shift = start % variants.len();
            for &variant in variants[shift..].iter().chain(&variants[..shift]) {
                let spec = env.spec(settings, variant);
                let log = settings
                    .work_dir
                    .join("logs")
                    .join(format!("init-{}.log", spec.name));
                let mut session = Session::start(&spec, &log).await?;
                let init = session.ready(INIT_TIMEOUT).await;
                session.stop().await;
                match init {
                    Ok(init) => samples.entry(variant).or_default().push(ms(init)),
                    Err(e) => results
                        .failures
                        .push(format!("init {}: {e}", variant.name())),
                }
                proxies.take();
            }
        }
        for (variant, samples) in samples {
            if let Some(m) = median(&samples) {
                results.init_runs.entry(variant).or_default().push(m);
            }
        }
    }
    Ok(())
}

fn num(name: &str, default: usize) -> Result<usize, String> {
    std::env::var(name).map_or(Ok(default), |v| {
        v.parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| format!("{name} must be a whole number from 1 to 1000"))
    })
}

/// DynamoDB's JSON protocol straight to moto (unsigned: moto reads only the
/// region from the credential scope).
struct Moto {
    http: reqwest::Client,
    url: String,
}

impl Moto {
    async fn call(&self, operation: &str, body: Value) -> Result<Value, String> {
        let answer = self
            .http
            .post(&self.url)
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
            .header("content-type", "application/x-amz-json-1.0")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-2/dynamodb/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("moto {operation}: {e}"))?;
        let status = answer.status();
        let text = answer.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("moto {operation}: HTTP {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("moto {operation}: {e}"))
    }

    async fn count(&self, table: &str) -> Result<usize, String> {
        let mut total = 0;
        let mut start: Option<Value> = None;
        loop {
            let mut body = json!({"TableName": table, "Select": "COUNT"});
            if let Some(key) = start.take() {
                body["ExclusiveStartKey"] = key;
            }
            let page = self.call("Scan", body).await?;
            total += page["Count"].as_u64().unwrap_or(0) as usize;
            match page.get("LastEvaluatedKey") {
                Some(key) if !key.is_null() => start = Some(key.clone()),
                _ => return Ok(total),
            }
        }
    }

    /// The median time of `runs` `Query`s on `by_owner` for `owner`.
    async fn time_query(&self, table: &str, owner: &str, runs: usize) -> Result<f64, String> {
        let mut times = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            self.call(
                "Query",
                json!({
                    "TableName": table,
                    "IndexName": "by_owner",
                    "KeyConditionExpression": "owner_pk = :owner",
                    "ExpressionAttributeValues": {":owner": {"S": format!("OWNER#{owner}")}},
                    "ScanIndexForward": false,
                    "Limit": 21
                }),
            )
            .await?;
            times.push(ms(started.elapsed()));
        }
        median(&times).ok_or_else(|| "no Query timed".to_owned())
    }
}

fn consent_item(owner: &str, n: usize) -> Value {
    json!({
        "pk": {"S": format!("CONSENT#bench{owner}{n:08}")},
        "sk": {"S": "CONSENT"},
        "owner_pk": {"S": format!("OWNER#{owner}")},
        "owner_sk": {"S": format!("2026-12-01T00:00:00.{n:06}Z#bench{n:08}")},
        "status": {"S": "authorized"},
        "customer_id": {"S": "cus_bench"},
        "created_at": {"S": "2026-12-01T00:00:00.000000Z"},
    })
}

async fn moto_part(settings: &Settings, results: &mut ColdResults) -> Result<(), String> {
    let moto = Moto {
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?,
        url: settings.moto.clone(),
    };
    let runs = 11;
    // The functions' table as the cold part left it.
    let items = moto.count(&settings.table).await?;
    let query = moto.time_query(&settings.table, LIST_USER, runs).await?;
    results.bench_table = Some((items, query));

    // A table of its own, grown step by step: 3 consents of the queried
    // owner, the rest other owners' (every consent is in the index).
    let table = format!("cold-moto-{:08x}", std::process::id());
    let key = |name: &str, kind: &str| json!({"AttributeName": name, "KeyType": kind});
    let attribute = |name: &str| json!({"AttributeName": name, "AttributeType": "S"});
    moto.call(
        "CreateTable",
        json!({
            "TableName": table,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [key("pk", "HASH"), key("sk", "RANGE")],
            "AttributeDefinitions": [attribute("pk"), attribute("sk"), attribute("owner_pk"), attribute("owner_sk")],
            "GlobalSecondaryIndexes": [{
                "IndexName": "by_owner",
                "KeySchema": [key("owner_pk", "HASH"), key("owner_sk", "RANGE")],
                "Projection": {"ProjectionType": "ALL"}
            }]
        }),
    )
    .await?;
    let mut written = 0;
    let mut items: Vec<Value> = (0..3).map(|n| consent_item("queried", n)).collect();
    for size in [3usize, 300, 1000, 3000, 6000] {
        while written < size {
            if items.is_empty() {
                items = (written..size)
                    .map(|n| consent_item(&format!("other{}", n % 500), n))
                    .collect();
            }
            let batch: Vec<Value> = items
                .drain(..items.len().min(25))
                .map(|item| json!({"PutRequest": {"Item": item}}))
                .collect();
            written += batch.len();
            moto.call(
                "BatchWriteItem",
                json!({"RequestItems": {table.clone(): batch}}),
            )
            .await?;
        }
        eprintln!("moto: Query on by_owner with {size} items");
        let query = moto.time_query(&table, "queried", runs).await?;
        results.moto_query.push((size, query, runs));
    }
    let _ = moto.call("DeleteTable", json!({"TableName": table})).await;
    Ok(())
}

fn summary(values: impl Iterator<Item = f64>) -> (Option<f64>, f64, f64) {
    let values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(&values), min, max)
}

fn cell((median, min, max): (Option<f64>, f64, f64)) -> String {
    match median {
        Some(m) => format!("{m:.1} ({min:.1}–{max:.1})"),
        None => "–".into(),
    }
}

/// One goal line: (goal, target, measured, met).
pub type Goal = (String, String, String, Option<bool>);

/// The section of `benches/RESULTS.md`, and its goals.
pub fn section(r: &ColdResults) -> (String, Vec<Goal>) {
    let mut s = String::new();
    let mut goals = Vec::new();
    let rtt = ms(r.one_way) * 2.0;
    let floor_ms = median(&r.secret_floor);
    let _ = writeln!(s, "## The cold request over TLS\n");
    let _ = writeln!(
        s,
        "moto and the Finexer sandbox sit behind local TLS terminators (a test CA made by the \
         harness with rcgen, trusted by the functions through `AWS_CA_BUNDLE` and \
         `FINEXER_CA_BUNDLE`), each behind a line that adds {:.0} ms each way ({rtt:.0} ms per round \
         trip; a new connection's first bytes wait one round trip more, its TCP handshake). The \
         terminator in front of moto keeps the function's connection open and opens its own to \
         moto per request (moto answers `Connection: close`). Each start hands the function its \
         first event as soon as it asks for one, as Lambda does on a cold start, then {WARM} warm \
         ones. Rounds interleave the hello-world and each function with the start-up prefetch on \
         and off (which goes first alternates by round). Medians of the starts, with the range \
         (min–max) in brackets; ms. *CPU* is the process's user + system time from its first \
         `GET /next` to its first response (`/proc/<pid>/task/*/schedstat`), the prefetch's \
         included. create-link's user already has a Finexer customer; consents lists a user with \
         3 consents.\n",
        ms(r.one_way)
    );
    let _ = writeln!(
        s,
        "| Function | Starts | Init | Spawn → first response | First response | Warm response | First − warm | CPU of the first |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for (variant, starts) in &r.starts {
        let first = summary(starts.iter().map(|c| c.first_ms));
        let warm = summary(starts.iter().map(|c| c.warm_ms));
        let gap = match (first.0, warm.0) {
            (Some(f), Some(w)) => Some(f - w),
            _ => None,
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            variant.name(),
            starts.len(),
            cell(summary(starts.iter().map(|c| c.init_ms))),
            cell(summary(starts.iter().map(|c| c.spawn_to_first_ms))),
            cell(first),
            cell(warm),
            gap.map_or("–".into(), |g| format!(
                "**{g:.1}** ({:.1} round trips)",
                g / rtt
            )),
            cell(summary(starts.iter().map(|c| c.first_cpu_ms))),
        );
        if let Variant::Function(kind, prefetch) = variant {
            goals.push((
                format!(
                    "{} cold first response − warm, prefetch {}",
                    kind.binary(),
                    if *prefetch {
                        "on"
                    } else {
                        "off (for comparison)"
                    }
                ),
                format!(
                    "≤ {:.0} ms ({EXTRA_ROUND_TRIPS:.0} round trips)",
                    rtt * EXTRA_ROUND_TRIPS
                ),
                match (gap, floor_ms) {
                    (Some(g), Some(floor)) if *prefetch => {
                        format!("{g:.1} ms (the floor here: {floor:.1} ms)")
                    }
                    (Some(g), _) => format!("{g:.1} ms"),
                    _ => "–".into(),
                },
                if *prefetch {
                    gap.map(|g| g <= rtt * EXTRA_ROUND_TRIPS)
                } else {
                    None
                },
            ));
        }
    }
    let floor = summary(r.secret_floor.iter().copied());
    if let Some(median_floor) = floor.0 {
        let _ = writeln!(
            s,
            "\n**The floor here:** one `GetSecretValue` on a new TLS connection through the same \
             terminator and latency line, from the harness, once per round: **{}** ms ({:.1} round \
             trips; {} samples). It is the three round trips of TCP, TLS 1.3 and the request, with \
             moto's answer and the handshake's CPU on this machine. A first request that needs a \
             secret before anything else (the callback verifies its state first, and calls Finexer \
             only with the API key) answers at best that much later than a warm one.",
            cell(floor),
            median_floor / rtt,
            r.secret_floor.len()
        );
    }
    for failure in &r.failures {
        let _ = writeln!(s, "\n> failed: {failure}");
    }

    let _ = writeln!(s, "\n### Init, measured fairly\n");
    let runs = r.init_runs.values().map(Vec::len).max().unwrap_or(0);
    let _ = writeln!(
        s,
        "Spawn to the first `GET /next`, the same TLS endpoints configured. {runs} runs of {} \
         round-robin starts of every row (the order rotated by start); a run's figure is its \
         median; shown: the median of the runs' figures and their range. The multi-thread \
         hello-world is the one `cargo lambda new` writes; the `current_thread` one differs only \
         in its runtime, as our functions do.\n",
        r.init_starts
    );
    let hello_ct = r
        .init_runs
        .get(&Variant::HelloCurrentThread)
        .and_then(|v| median(v));
    let hello_mt = r.init_runs.get(&Variant::Hello).and_then(|v| median(v));
    let _ = writeln!(
        s,
        "| Binary | Init, median of run medians (range) | × multi-thread hello | × `current_thread` hello |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    for (variant, runs) in &r.init_runs {
        let m = median(runs);
        let ratio = |base: Option<f64>| match (m, base) {
            (Some(m), Some(b)) if b > 0.0 => format!("{:.2}×", m / b),
            _ => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            variant.name(),
            cell(summary(runs.iter().copied())),
            ratio(hello_mt),
            ratio(hello_ct)
        );
    }
    for kind in FUNCTIONS {
        let on = r
            .init_runs
            .get(&Variant::Function(kind, true))
            .and_then(|v| median(v));
        let off = r
            .init_runs
            .get(&Variant::Function(kind, false))
            .and_then(|v| median(v));
        let ratio = match (on, off) {
            (Some(on), Some(off)) if off > 0.0 => Some(on / off),
            _ => None,
        };
        goals.push((
            format!("{} init, prefetch on vs off", kind.binary()),
            format!("≤ {INIT_PREFETCH_GOAL:.2}×"),
            match (ratio, on, off) {
                (Some(x), Some(on), Some(off)) => format!("{x:.3}× ({on:.2} ms vs {off:.2} ms)"),
                _ => "–".into(),
            },
            ratio.map(|x| x <= INIT_PREFETCH_GOAL),
        ));
    }

    let _ = writeln!(s, "\n### moto's share\n");
    let _ = writeln!(
        s,
        "moto's `Query` on the `by_owner` index (what `GET /consents` sends), straight to moto \
         over plain HTTP without the latency line, median of {} each, against the table's size \
         (3 items of the queried owner, the rest other owners' consents, all in the index):\n",
        r.moto_query.first().map_or(0, |q| q.2)
    );
    let _ = writeln!(s, "| Items in the table | moto's Query, median ms |");
    let _ = writeln!(s, "|---|---|");
    for (items, query, _) in &r.moto_query {
        let _ = writeln!(s, "| {items} | {query:.1} |");
    }
    if let Some((items, query)) = r.bench_table {
        let consents_warm = r
            .starts
            .get(&Variant::Function(Kind::Consents, true))
            .and_then(|starts| median(&starts.iter().map(|c| c.warm_ms).collect::<Vec<_>>()));
        let _ = writeln!(
            s,
            "\nThe functions' table after the cold part holds **{items} items**; on it moto \
             answers the list user's `Query` in **{query:.1} ms** (median of {}). consents' warm \
             `GET /consents` above takes {} ms: one round trip of the latency line ({rtt:.0} ms), \
             moto's Query ({query:.1} ms), and the rest ours and the terminators'.",
            r.moto_query.first().map_or(0, |q| q.2),
            consents_warm.map_or("–".into(), |w| format!("{w:.1}")),
        );
    }
    (s, goals)
}
