//! `bench-overhead`: criterion benchmarks of our own CPU time per request.
//!
//! Each handler runs as `lambda_http` runs it for one invocation: the event's
//! JSON parsed into a `LambdaRequest`, `lambda_http`'s adapter turning it into
//! an `http::Request`, the handler, and the `LambdaResponse` serialised back to
//! JSON; only the Runtime API's own HTTP exchange is left out. The store is
//! `MemoryStore`, the secrets `StaticSecrets`, and Finexer our sandbox on a
//! thread and runtime of its own (`connect_testkit::sandbox`), reached through
//! `FinexerClient`'s transport: the client still builds each request (URL,
//! basic auth, form body) and parses each answer, only the network stack is
//! left out, and the sandbox's own work is on its thread, not counted. The
//! goal figure is the CPU time of the benchmark thread
//! (`CLOCK_THREAD_CPUTIME_ID`); wall time is shown beside it (it includes the
//! hand-over to the sandbox's thread and back). For comparison, the Finexer
//! call and the callback also run against the same sandbox over loopback HTTP
//! (reqwest, the kernel's TCP), which is what a real network call adds.
//! Logging is on, as in Lambda (the functions' subscriber, writing to a sink).
//!
//! Writes `$BENCH_OVERHEAD_JSON` (default `target-release/bench/overhead.json`)
//! for `connect-bench`'s report; criterion's own files go to `$CRITERION_HOME`.

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, Throughput};
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Body, Context, LambdaEvent, Request, Response, Service, service_fn};
use serde_json::{Value, json};
use shared::App;
use shared::Timestamp;
use shared::config::Config;
use shared::consent::ConsentStatus;
use shared::finexer::{NewConsent, NewCustomer};
use shared::handlers::{self, CreateLink, LinkCreated};
use shared::secrets::{AppSecrets, StaticSecrets};
use shared::state::{self, StateClaims};
use shared::store::memory::MemoryStore;
use shared::store::{ConsentStore, StateRecord};

use connect_testkit::Event;
use connect_testkit::lambda::USER;
use connect_testkit::records::{self, Seed};
use connect_testkit::sandbox::SandboxThread;

const FINEXER_API_KEY: &str = "sk_bench";
const SECRET: &str = r#"{"finexer_api_key":"sk_bench","state_keys":[{"kid":"bench-1","key":"bench-signing-key-bench-signing-key-0001"}]}"#;
const CALLBACK_URL: &str = "http://127.0.0.1:3000/callback";
const FRONTEND_URL: &str = "http://127.0.0.1:3000/connected";
const PROVIDER: &str = "sandbox-barclays";

// ---------------------------------------------------------------------------
// CPU time of the calling thread, as a criterion measurement.

struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is not available");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns cpu")
        } else if typical < 1e6 {
            (1e-3, "µs cpu")
        } else {
            (1e-6, "ms cpu")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        _t: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        values.iter_mut().for_each(|v| *v = 1e9 / *v);
        "req/s cpu"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

// ---------------------------------------------------------------------------
// The system under test.

struct Fixture {
    rt: tokio::runtime::Runtime,
    /// Finexer: the sandbox, on its own thread.
    sandbox: SandboxThread,
    /// Our customer at the sandbox.
    customer: String,
    /// A consent the sandbox knows, for the component benchmarks.
    known_consent: String,
    /// Finexer in-process (the goal's figures).
    app: &'static App,
    /// The same store, Finexer over loopback HTTP (for comparison).
    loopback_app: &'static App,
    store: Arc<MemoryStore>,
    /// A separate store holding only the 3 consents `GET /consents` lists:
    /// `MemoryStore` scans every consent, and the main store grows by one
    /// per create-link, callback and revoke iteration.
    list_app: &'static App,
    list_store: Arc<MemoryStore>,
    secrets: Arc<AppSecrets>,
    create_link_event: Vec<u8>,
    list_event: Vec<u8>,
    serial: AtomicU64,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Fixture {
    fn new() -> Fixture {
        let sandbox = SandboxThread::start(finexer_sandbox::SandboxConfig {
            api_key: FINEXER_API_KEY.into(),
            ..Default::default()
        });
        let config = Config::from_lookup(|name| {
            Some(
                match name {
                    "CONSENT_TABLE" => "bench",
                    "CALLBACK_URL" => CALLBACK_URL,
                    "FRONTEND_URLS" => FRONTEND_URL,
                    "FINEXER_BASE_URL" => sandbox.base_url(),
                    _ => return None,
                }
                .to_owned(),
            )
        })
        .expect("configuration");
        let secrets = Arc::new(AppSecrets::parse(SECRET).expect("secret"));
        let store = Arc::new(MemoryStore::new());
        let list_store = Arc::new(MemoryStore::new());
        let transport = sandbox.transport();
        let make = |store: Arc<MemoryStore>, in_process: bool| -> &'static App {
            let mut app = App::new(
                config.clone(),
                store,
                Arc::new(StaticSecrets(secrets.clone())),
            )
            .expect("app");
            if in_process {
                app.finexer = app.finexer.with_transport(transport.clone());
            }
            Box::leak(Box::new(app))
        };
        let app = make(store.clone(), true);
        let loopback_app = make(store.clone(), false);
        let list_app = make(list_store.clone(), true);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let customer = rt
            .block_on(app.finexer.create_customer(&NewCustomer {
                name: "Bench User",
                email: "bench-user@example.com",
                user_ref: USER,
            }))
            .expect("the sandbox creates the customer")
            .id;
        let mut fixture = Fixture {
            rt,
            sandbox,
            customer,
            known_consent: String::new(),
            app,
            loopback_app,
            store,
            list_app,
            list_store,
            secrets,
            create_link_event: Event::post("/links").user(USER).json(&json!({})).to_bytes(),
            list_event: Event::get("/consents").user(USER).to_bytes(),
            serial: AtomicU64::new(0),
        };
        fixture.rt.block_on(async {
            fixture
                .store
                .save_customer(USER, &fixture.customer)
                .await
                .expect("customer");
        });
        for _ in 0..3 {
            let (id, _) = fixture.insert_consent(&fixture.list_store, ConsentStatus::Authorized);
            fixture.known_consent = id;
        }
        fixture
    }

    /// A consent at the sandbox, authorized there (as after the bank's
    /// approval): created through the in-process client, outside any timing.
    fn sandbox_consent(&self, state_id: &str) -> String {
        let consent = self
            .rt
            .block_on(self.app.finexer.create_consent(&NewConsent {
                customer: &self.customer,
                return_url: CALLBACK_URL,
                provider: Some(PROVIDER),
                state_id,
            }))
            .expect("the sandbox creates the consent");
        self.sandbox
            .state()
            .store
            .update_consent(&consent.id, |consent| {
                finexer_sandbox::api::consents::authorize(consent);
                Ok::<(), Infallible>(())
            })
            .expect("infallible")
            .expect("the sandbox knows the consent it created");
        consent.id
    }

    /// A consent of ours and its unused state; returns (consent id, token).
    /// The sandbox knows it as authorized, whatever `status` we record.
    fn insert_consent(&self, store: &MemoryStore, status: ConsentStatus) -> (String, String) {
        self.serial.fetch_add(1, Ordering::Relaxed);
        let claims = StateClaims::new(USER, now(), 900);
        let consent_id = self.sandbox_consent(&claims.jti);
        let token = state::sign(&claims, &*self.secrets).expect("sign");
        let mut record = records::consent(Seed {
            consent_id: &consent_id,
            owner: USER,
            customer_id: &self.customer,
            state_id: &claims.jti,
            return_to: FRONTEND_URL,
            status: status.clone(),
            at: Timestamp::now(),
        });
        record.milestones.provider = Some(PROVIDER.into());
        // Seeded as already confirmed: the benchmark measures reads of
        // consents whose data is served.
        record.milestones.confirmed_at = record.milestones.authorized_at;
        let state_record = StateRecord {
            state_id: claims.jti,
            consent_id: consent_id.clone(),
            owner: USER.to_owned(),
            expires_at: claims.exp,
        };
        self.rt.block_on(async {
            store
                .insert_consent(&record, &state_record)
                .await
                .expect("insert");
        });
        (consent_id, token)
    }

    fn callback_event(&self) -> Vec<u8> {
        let (consent, token) = self.insert_consent(&self.store, ConsentStatus::Pending);
        Event::get("/callback")
            .query_pairs(&[("fx_consent", &consent), ("state", &token)])
            .to_bytes()
    }

    fn revoke_event(&self) -> Vec<u8> {
        let (consent, _) = self.insert_consent(&self.store, ConsentStatus::Authorized);
        Event::post(&format!("/consents/{consent}/revoke"))
            .user(USER)
            .to_bytes()
    }
}

#[derive(Clone, Copy)]
enum Handler {
    CreateLink,
    Callback,
    Revoke,
    Consents,
}

/// One invocation as `lambda_http` runs it: event JSON in, response JSON out.
async fn invoke_with<F, Fut>(handler: F, event: &[u8]) -> Vec<u8>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let request: LambdaRequest = serde_json::from_slice(event).expect("event JSON");
    let mut adapter = Adapter::from(service_fn(move |r: Request| {
        let response = handler(r);
        async move { Ok::<_, Infallible>(response.await) }
    }));
    let response = adapter
        .call(LambdaEvent::new(request, Context::default()))
        .await
        .expect("infallible");
    serde_json::to_vec(&response).expect("response JSON")
}

async fn invoke(app: &'static App, handler: Handler, event: &[u8]) -> Vec<u8> {
    match handler {
        Handler::CreateLink => invoke_with(|r| handlers::create_link(app, r), event).await,
        Handler::Callback => invoke_with(|r| handlers::callback(app, r), event).await,
        Handler::Revoke => invoke_with(|r| handlers::revoke(app, r), event).await,
        Handler::Consents => invoke_with(|r| handlers::consents(app, r), event).await,
    }
}

/// Refuses to benchmark an error path: each handler must answer as in the journey.
fn preflight(f: &Fixture) {
    let cases = [
        (Handler::CreateLink, f.create_link_event.clone(), 201),
        (Handler::Callback, f.callback_event(), 303),
        (Handler::Revoke, f.revoke_event(), 200),
        (Handler::Consents, f.list_event.clone(), 200),
    ];
    let loopback = [(Handler::Callback, f.callback_event(), 303)];
    let runs = cases
        .into_iter()
        .map(|(handler, event, expected)| {
            let app = match handler {
                Handler::Consents => f.list_app,
                _ => f.app,
            };
            (app, handler, event, expected)
        })
        .chain(
            loopback
                .into_iter()
                .map(|(handler, event, expected)| (f.loopback_app, handler, event, expected)),
        );
    for (app, handler, event, expected) in runs {
        let out = f.rt.block_on(invoke(app, handler, &event));
        let v: Value = serde_json::from_slice(&out).expect("response");
        assert_eq!(
            v["statusCode"].as_u64(),
            Some(expected),
            "the benchmark would measure an error path: {v}"
        );
    }
}

// ---------------------------------------------------------------------------
// The benchmarks, once per measurement.

struct Case {
    name: &'static str,
    what: &'static str,
    goal: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "create_link",
        what: "whole invocation: `POST /links` `{}`, customer known (store read, state signed, Finexer `POST /consents`, consent + state written, 201 JSON)",
        goal: true,
    },
    Case {
        name: "callback",
        what: "whole invocation: `GET /callback` with a fresh genuine state (state verified, store read ∥ Finexer `GET /consents/{id}`, state consumed, 303)",
        goal: true,
    },
    Case {
        name: "revoke",
        what: "whole invocation: revoke an authorized consent (2 conditional updates, Finexer `POST .../revoke`, 200 JSON)",
        goal: true,
    },
    Case {
        name: "consents_list",
        what: "whole invocation: `GET /consents`, 3 consents (no Finexer call)",
        goal: true,
    },
    Case {
        name: "callback_loopback",
        what: "for comparison: `callback` with Finexer over loopback HTTP (reqwest, kernel TCP)",
        goal: false,
    },
    Case {
        name: "finexer_get_consent",
        what: "component: one `FinexerClient::get_consent`, answered in-process by the sandbox on its own thread (request built, JSON parsed)",
        goal: false,
    },
    Case {
        name: "finexer_get_consent_loopback",
        what: "component: the same over loopback HTTP to the sandbox in another thread",
        goal: false,
    },
    Case {
        name: "state_sign",
        what: "component: new state claims + HS256 sign",
        goal: false,
    },
    Case {
        name: "state_verify",
        what: "component: HS256 verify + claim checks",
        goal: false,
    },
    Case {
        name: "event_parse",
        what: "component: API Gateway v2 event JSON → `http::Request` (`lambda_http`)",
        goal: false,
    },
    Case {
        name: "body_parse",
        what: "component: `json_body::<CreateLink>` of `{\"return_to\": ...}`",
        goal: false,
    },
    Case {
        name: "response_build",
        what: "component: `json_response(201, LinkCreated)`",
        goal: false,
    },
];

fn run_all<M: Measurement + 'static>(c: &mut Criterion<M>, group: &str, f: &Fixture) {
    let mut g = c.benchmark_group(group);
    g.bench_function("create_link", |b| {
        b.iter(|| {
            f.rt.block_on(invoke(f.app, Handler::CreateLink, &f.create_link_event))
        })
    });
    g.bench_function("callback", |b| {
        b.iter_batched(
            || f.callback_event(),
            |event| f.rt.block_on(invoke(f.app, Handler::Callback, &event)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("revoke", |b| {
        b.iter_batched(
            || f.revoke_event(),
            |event| f.rt.block_on(invoke(f.app, Handler::Revoke, &event)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("consents_list", |b| {
        b.iter(|| {
            f.rt.block_on(invoke(f.list_app, Handler::Consents, &f.list_event))
        })
    });
    g.bench_function("state_sign", |b| {
        b.iter(|| {
            let claims = StateClaims::new(USER, now(), 900);
            state::sign(&claims, &*f.secrets).expect("sign")
        })
    });
    let token = state::sign(&StateClaims::new(USER, now(), 900), &*f.secrets).expect("sign");
    g.bench_function("state_verify", |b| {
        b.iter(|| state::verify(std::hint::black_box(&token), &*f.secrets).expect("verify"))
    });
    let event_text = String::from_utf8(f.create_link_event.clone()).expect("utf-8");
    g.bench_function("event_parse", |b| {
        b.iter(|| lambda_http::request::from_str(std::hint::black_box(&event_text)).expect("event"))
    });
    let request = Event::post("/links")
        .user(USER)
        .json(&json!({"return_to": FRONTEND_URL, "skip_info": true}))
        .request();
    g.bench_function("body_parse", |b| {
        b.iter(|| {
            shared::http::json_body::<CreateLink>(std::hint::black_box(&request)).expect("body")
        })
    });
    g.bench_function("callback_loopback", |b| {
        b.iter_batched(
            || f.callback_event(),
            |event| {
                f.rt.block_on(invoke(f.loopback_app, Handler::Callback, &event))
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("finexer_get_consent", |b| {
        b.iter(|| {
            f.rt.block_on(f.app.finexer.get_consent(&f.known_consent))
                .expect("the sandbox answers")
        })
    });
    g.bench_function("finexer_get_consent_loopback", |b| {
        b.iter(|| {
            f.rt.block_on(f.loopback_app.finexer.get_consent(&f.known_consent))
                .expect("the sandbox answers")
        })
    });
    let created = LinkCreated {
        consent_id: "bc_bench_1".into(),
        consent_url: "http://127.0.0.1:9/connect/bc_bench_1?skip_info=true".into(),
        expires_at: records::at("2026-11-25T10:15:00Z"),
    };
    g.bench_function("response_build", |b| {
        b.iter(|| {
            shared::http::json_response(201, std::hint::black_box(&created)).expect("response")
        })
    });
    g.finish();
}

fn configure<M: Measurement>(c: Criterion<M>, seconds: u64, home: &Path) -> Criterion<M> {
    c.sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(seconds))
        .output_directory(home)
        .without_plots()
}

fn estimate(home: &Path, group: &str, name: &str) -> Value {
    let path = home
        .join(group)
        .join(name)
        .join("new")
        .join("estimates.json");
    let Some(v) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    else {
        return Value::Null;
    };
    let m = &v["median"];
    json!({
        "median_ns": m["point_estimate"],
        "low_ns": m["confidence_interval"]["lower_bound"],
        "high_ns": m["confidence_interval"]["upper_bound"],
    })
}

fn main() {
    let home = PathBuf::from(
        std::env::var("CRITERION_HOME").unwrap_or_else(|_| "target-release/criterion".into()),
    );
    let out = PathBuf::from(
        std::env::var("BENCH_OVERHEAD_JSON")
            .unwrap_or_else(|_| "target-release/bench/overhead.json".into()),
    );
    let seconds: u64 = std::env::var("BENCH_OVERHEAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .clamp(1, 60);
    lambda_http::tracing::init_default_subscriber_with_writer(std::io::sink);

    let fixture = Fixture::new();
    preflight(&fixture);
    let mut cpu = configure(
        Criterion::default().with_measurement(ThreadCpu),
        seconds,
        &home,
    );
    run_all(&mut cpu, "cpu", &fixture);
    let mut wall = configure(
        Criterion::default().with_measurement(WallTime),
        seconds,
        &home,
    );
    run_all(&mut wall, "wall", &fixture);

    let benches: Vec<Value> = CASES
        .iter()
        .map(|case| {
            json!({
                "name": case.name,
                "what": case.what,
                "goal": case.goal,
                "cpu": estimate(&home, "cpu", case.name),
                "wall": estimate(&home, "wall", case.name),
            })
        })
        .collect();
    let about = format!(
        "criterion 0.8 (built with the release profile and cargo-lambda's flags: \
         `--target x86_64-unknown-linux-gnu`, `-C target-cpu=haswell`), {seconds} s of samples \
         after 1 s of warm-up per benchmark, 40 samples; \
         median per iteration with its 95% confidence interval. Whole invocations run as \
         `lambda_http` runs them (event JSON → `LambdaRequest` → adapter → handler → \
         `LambdaResponse` JSON), with `MemoryStore`, `StaticSecrets`, logging on (the functions' \
         subscriber writing to a sink) and the Finexer sandbox on its own thread answering \
         in-process behind `FinexerClient`'s transport (each request is still built, \
         authenticated and encoded, each answer parsed; only the network stack is left out, and \
         the sandbox's work is on its thread). *CPU time* is the benchmark \
         thread's (`CLOCK_THREAD_CPUTIME_ID`); it is the goal's figure. The `_loopback` rows send \
         the same calls over loopback HTTP to the sandbox: their CPU time adds \
         reqwest and the kernel's TCP work, their wall time the round trip. Setup (new consents \
         and states for callback and revoke) is outside the timing."
    );
    let report = json!({"about": about, "benches": benches});
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report).expect("json"))
        .expect("write the overhead results");
    eprintln!("wrote {}", out.display());
}
