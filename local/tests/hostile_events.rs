//! No request can end a function's process: every function's binary runs
//! under the test kit's Lambda Runtime API emulator (as Lambda runs it,
//! with the production configuration pointed at moto and an in-process
//! Finexer sandbox) and is handed hostile API Gateway events, one after the
//! other: raw `"`, `<`, `>`, space, `{`, `|`, `^`, backtick, `%`, `%zz`,
//! invalid UTF-8, control bytes and 20 KB strings in the query, the path,
//! the headers and the cookies; invalid base64, deeply nested JSON and
//! 300 KB bodies. Every event must get an HTTP answer below 500 (no backend
//! is away here), and one process must serve them all: no init error, no
//! exit, no panic in its log.
//!
//! With DynamoDB and Secrets Manager unreachable, the same functions answer
//! a few events per route below 500 or 503 with `Retry-After`
//! (`an_aws_outage_is_answered_503_never_500`).
//!
//! The same setup runs one journey through all seven binaries and checks
//! the metric (EMF) and log lines they print (`every_function_prints_valid_metric_lines`),
//! and, at TRACE, that nothing secret is printed
//! (`a_trace_level_run_prints_no_secret`). The `reconcile` binary given a
//! time in its payload changes nothing
//! (`the_deployed_reconciler_takes_no_clock_from_its_payload`).
//!
//! Binaries: `HOSTILE_BIN_DIR` if set (`scripts/test.sh` points it at the
//! release binaries `scripts/build-zips.sh` built, so the deployed profile is
//! tested too); otherwise the debug binaries, which this test builds with
//! cargo first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use connect_local::LocalConfig;
use connect_testkit::Event;
use connect_testkit::aws::moto_endpoint;
use connect_testkit::lambda::{INIT_TIMEOUT, INVOKE_TIMEOUT, OTHER_USER, USER};
use connect_testkit::runtime_api::{FunctionSpec, Session};
use connect_testkit::sandbox::{Decision, decide_at_consent_page};
use serde_json::{Value, json};
use shared::routes::{self, Function};

/// Owns no consents here, so that listing them stays quick however many
/// create-link made for `USER`.
const READER: &str = OTHER_USER;
/// Stands in for raw bytes in an event's JSON text (see `raw_events`).
const MARK: &str = "RAW-BYTES-HERE";

/// The directory holding the function binaries.
fn binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOSTILE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo.current_dir(&root).args(["build", "--quiet"]);
    for f in Function::ALL {
        cargo.args(["-p", f.name()]);
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "cargo build of the functions failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("debug")
}

/// `route` with `text` put into its query, path, a header and a cookie.
fn placed(route: &Value, text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let raw_path = route["rawPath"].as_str().unwrap().to_owned();
    let short: String = text.chars().take(12).collect();

    let mut e = route.clone();
    e["rawQueryString"] = format!("state={text}&fx_consent={text}").into();
    out.push((format!("query value {short:?}"), e));

    let mut e = route.clone();
    e["rawQueryString"] = text.into();
    out.push((format!("whole query {short:?}"), e));

    let mut e = route.clone();
    let path = format!("{raw_path}/{text}");
    e["rawPath"] = path.clone().into();
    e["requestContext"]["http"]["path"] = path.into();
    out.push((format!("path {short:?}"), e));

    let mut e = route.clone();
    e["rawPath"] = text.into();
    out.push((format!("whole path {short:?}"), e));

    let mut e = route.clone();
    e["headers"]["x-hostile"] = text.into();
    e["headers"]["host"] = text.into();
    e["headers"]["x-forwarded-proto"] = text.into();
    e["headers"]["content-type"] = text.into();
    e["headers"][text] = "name".into();
    out.push((format!("headers {short:?}"), e));

    let mut e = route.clone();
    e["cookies"] = json!([format!("fx_bind={text}"), text, "a=b"]);
    out.push((format!("cookies {short:?}"), e));
    out
}

/// The hostile texts, each put everywhere by `placed`.
fn texts() -> Vec<String> {
    let mut texts: Vec<String> = [
        "\"",
        "<",
        ">",
        " ",
        "{",
        "}",
        "|",
        "^",
        "`",
        "%",
        "%zz",
        "%4",
        "%C3%28",
        "%FF%FE%00",
        "\u{0}\u{1}\u{1f}\u{7f}\r\n\t",
        "\u{fffd}é€😀",
        "#frag",
        "?q=1",
        "..",
        "/../../etc",
        "\\",
        "[::1]",
        ":99999",
        "@evil",
        "a b\"<>`{|}^%zz\u{1}",
    ]
    .map(String::from)
    .to_vec();
    texts.push("\"<> {|^`%".repeat(20 * 1024 / 9));
    texts.push("a".repeat(20 * 1024));
    texts.push("é".repeat(10 * 1024));
    texts
}

/// Odd bodies for `route`.
fn bodies(route: &Value) -> Vec<(String, Value)> {
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested_object = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    let cases: Vec<(&str, Value, bool)> = vec![
        ("invalid base64", "not base64 %%% ***".into(), true),
        ("base64 without padding", "eyJhIjoxfQ".into(), true),
        ("base64 of invalid UTF-8", "//79/A==".into(), true),
        ("deeply nested array", nested.into(), false),
        ("deeply nested object", nested_object.into(), false),
        ("300 KB", "x".repeat(300 * 1024).into(), false),
        (
            "300 KB of JSON",
            format!("{{\"provider\":\"{}\"}}", "a".repeat(300 * 1024)).into(),
            false,
        ),
        (
            "300 KB base64",
            base64_of(&vec![b'{'; 300 * 1024]).into(),
            true,
        ),
        ("a number", json!(5), false),
    ];
    cases
        .into_iter()
        .map(|(name, body, b64)| {
            let mut e = route.clone();
            e["body"] = body;
            e["isBase64Encoded"] = b64.into();
            e["headers"]["content-type"] = "application/json".into();
            (format!("body: {name}"), e)
        })
        .collect()
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Events that are not valid JSON text: raw invalid UTF-8 and lone
/// surrogate escapes in each field.
fn raw_events(route: &Value) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (where_, field) in [
        ("query", "/rawQueryString"),
        ("path", "/rawPath"),
        ("header", "/headers/x-hostile"),
        ("cookie", "/cookies/0"),
        ("body", "/body"),
    ] {
        let mut e = route.clone();
        e["cookies"] = json!([""]);
        e["headers"]["x-hostile"] = "".into();
        // The builder leaves `body` out of a bodiless event; put one in to mark.
        e["body"] = "".into();
        *e.pointer_mut(field).unwrap() = MARK.into();
        let text = serde_json::to_string(&e).unwrap();
        let (before, after) = text.split_once(MARK).unwrap();
        for (what, bytes) in [
            (
                "invalid UTF-8",
                &b"\xff\xfe\xc3\x28 \xed\xa0\x80 \xf0\x28\x8c\x28"[..],
            ),
            ("a lone surrogate", &b"\\ud800 x \\udc00"[..]),
        ] {
            let raw_event = [before.as_bytes(), bytes, after.as_bytes()].concat();
            out.push((format!("{what} in the {where_}"), raw_event));
        }
    }
    out
}

/// The routes each function serves (the route table's), as API Gateway
/// sends them.
fn routes(function: Function) -> Vec<Value> {
    let id = "bc_hostile0000";
    let user = if function == Function::Consents {
        READER
    } else {
        USER
    };
    function
        .routes()
        .map(|route| {
            let path = route.path().replace("{id}", id);
            let mut event = Event::new(route.method(), &path).request_id("hostile");
            if route.is_authorized() {
                event = event.user(user);
            }
            match *route {
                routes::CREATE_LINK => event.json(&json!({})),
                routes::CONFIRM => event.json(&json!({"code": "x"})),
                _ => event,
            }
            .to_json()
        })
        .collect()
}

/// The functions' production configuration, pointed at moto (with the
/// table and secret the local stack creates) and a Finexer sandbox.
struct Setup {
    bin_dir: PathBuf,
    sandbox: finexer_sandbox::RunningSandbox,
    stack: connect_local::RunningStack,
    env: Vec<(String, String)>,
    /// Where each function's log (its stdout and stderr) is written.
    work: PathBuf,
}

impl Setup {
    async fn start(extra_env: &[(&str, &str)]) -> Setup {
        let started = Instant::now();
        let aws = moto_endpoint();
        let bin_dir = binaries();
        println!(
            "binaries ready after {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let sandbox = finexer_sandbox::start(finexer_sandbox::SandboxConfig::default())
            .await
            .unwrap();
        // The local stack creates the table and the secrets (with the sandbox's
        // API key) as the template defines them; the functions then use them.
        let suffix = format!("{:016x}", rand::random::<u64>());
        let table = format!("hostile-{suffix}");
        let secret_ids = [
            (
                "FINEXER_API_KEY_SECRET_ID",
                format!("hostile/{suffix}/api-key"),
            ),
            (
                "STATE_KEYS_SECRET_ID",
                format!("hostile/{suffix}/state-keys"),
            ),
            (
                "WEBHOOK_SECRETS_SECRET_ID",
                format!("hostile/{suffix}/webhook-secrets"),
            ),
        ];
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("LOCAL_ADDR", "127.0.0.1:0".into()),
            // Any free port: two tests set up at once, and the demo's
            // default (3002) may be another stack's.
            ("DEMO_ADDR", "127.0.0.1:0".into()),
            ("AWS_ENDPOINT_URL", aws.clone()),
            ("FINEXER_BASE_URL", sandbox.base_url()),
            ("CONSENT_TABLE", table.clone()),
            // Only here to create the table and the secrets.
            ("LOCAL_RECONCILE_SECONDS", "0".into()),
        ]);
        vars.extend(secret_ids.iter().cloned());
        let config = LocalConfig::from_lookup(|name| vars.get(name).cloned()).unwrap();
        let stack = connect_local::start(config).await.unwrap();

        let work = std::env::temp_dir().join(format!("hostile-events-{suffix}"));
        std::fs::create_dir_all(&work).unwrap();
        let mut env: Vec<(String, String)> = [
            ("CONSENT_TABLE", table.as_str()),
            ("CALLBACK_URL", "http://127.0.0.1:3000/callback"),
            ("FRONTEND_URLS", "http://127.0.0.1:3000/connected"),
            ("FINEXER_BASE_URL", &sandbox.base_url()),
            ("FINEXER_TIMEOUT_MS", "5000"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "eu-west-2"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_ENDPOINT_URL", &aws),
            ("HOME", work.to_str().unwrap()),
            ("RUST_LOG", "info"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.extend(secret_ids.iter().map(|(k, v)| (k.to_string(), v.clone())));
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        Setup {
            bin_dir,
            sandbox,
            stack,
            env,
            work,
        }
    }

    /// `function`'s binary, started under the emulator and initialised;
    /// and the file its output goes to.
    async fn session(&self, function: &str) -> (Session, PathBuf) {
        // Only the secrets the function's role may read, as
        // infra/template.yaml configures it: reading another would fail here.
        let used = connect_testkit::lambda::secret_variables(function);
        let env = self
            .env
            .iter()
            .filter(|(k, _)| !k.ends_with("_SECRET_ID") || used.contains(&k.as_str()))
            .cloned()
            .collect();
        let spec = FunctionSpec {
            name: function.to_owned(),
            binary: self.bin_dir.join(function),
            env,
        };
        assert!(
            spec.binary.is_file(),
            "{} is missing (HOSTILE_BIN_DIR?)",
            spec.binary.display()
        );
        let log = self.work.join(format!("{function}.log"));
        let mut session = Session::start(&spec, &log).await.unwrap();
        session.ready(INIT_TIMEOUT).await.unwrap();
        (session, log)
    }

    /// Stops the stack and the sandbox; the logs stay (in the returned
    /// directory) for the test to remove once it has passed.
    async fn stop(self) -> PathBuf {
        self.stack.shutdown().await;
        self.sandbox.shutdown().await;
        self.work
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_ends_a_function_process() {
    let started = Instant::now();
    let setup = Setup::start(&[]).await;
    let mut failures = Vec::new();
    let mut total = 0;
    // Every function HTTP reaches, by every route of its.
    for function in Function::ALL.into_iter().filter(|f| !f.is_scheduled()) {
        let (mut session, log) = setup.session(function.name()).await;
        let pid = session.pid();

        let mut events: Vec<(String, Vec<u8>)> = Vec::new();
        for route in routes(function) {
            let name = route["routeKey"].as_str().unwrap().to_owned();
            let mut cases = Vec::new();
            for text in texts() {
                cases.extend(placed(&route, &text));
            }
            cases.extend(bodies(&route));
            events.extend(
                cases
                    .into_iter()
                    .map(|(what, e)| (format!("{name}: {what}"), serde_json::to_vec(&e).unwrap())),
            );
            events.extend(
                raw_events(&route)
                    .into_iter()
                    .map(|(what, raw)| (format!("{name}: {what}"), raw)),
            );
        }
        let function_started = Instant::now();
        let mut slowest: Vec<(Duration, String)> = Vec::new();
        for (what, raw) in events {
            total += 1;
            let one = Instant::now();
            let result = session.invoke_raw(raw, INVOKE_TIMEOUT).await;
            slowest.push((one.elapsed(), what.clone()));
            match result {
                Err(e) => {
                    failures.push(format!("{function} {what}: {e}"));
                    break; // the process is gone: nothing more to learn from it
                }
                Ok(outcome) if outcome.error => failures.push(format!(
                    "{function} {what}: invocation error {}",
                    String::from_utf8_lossy(&outcome.body)
                )),
                Ok(outcome) => match outcome.http() {
                    Some((status, _)) if status < 500 => {}
                    Some((status, body)) => {
                        failures.push(format!("{function} {what}: {status} {body}"))
                    }
                    None => failures.push(format!(
                        "{function} {what}: not an API Gateway response: {}",
                        String::from_utf8_lossy(&outcome.body)
                    )),
                },
            }
        }

        slowest.sort();
        println!(
            "{function}: {} events in {:.1} s; slowest {:?}",
            slowest.len(),
            function_started.elapsed().as_secs_f64(),
            &slowest[slowest.len().saturating_sub(3)..]
        );
        if let Err(e) = session.alive() {
            failures.push(e);
        }
        assert_eq!(session.pid(), pid);
        if let Some(e) = session.init_error() {
            failures.push(format!("{function}: init error {e}"));
        }
        session.stop().await;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("panicked") {
            failures.push(format!("{function} panicked (log: {})", log.display()));
        }
    }
    let work = setup.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {total} events failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "{total} hostile events, each answered below 500 by one process per function, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&work);
}

mod emf;

/// Stands in for a bearer token on the authorized routes (API Gateway
/// passes the `authorization` header through to the function).
const BEARER: &str = "eyJhbGciOiJSUzI1NiJ9.bearer-token-never-logged.c2lnbmF0dXJl";
/// Part of the webhook's body that nothing should ever print.
const WEBHOOK_BODY_MARK: &str = "webhook-body-never-logged-7f3a";

/// What [`journey`] ran: per function, its log, the routes of its
/// invocations in order, and whether they name the consent.
struct Journey {
    ran: Vec<(&'static str, PathBuf, Vec<&'static str>, bool)>,
    /// Everything the journey handled that no log line may show: the API
    /// key, the webhook secret, the bearer token, the state, the code, the
    /// webhook body, the account numbers, IBANs and card numbers.
    secrets: Vec<String>,
    consent_id: String,
}

/// One journey through all seven binaries under the emulator: a link, the
/// bank's approval, the callback, the confirmation, a read of the consent
/// and its accounts, a signed and an unsigned webhook, a revocation and a
/// reconciler run.
async fn journey(setup: &Setup, user: &str) -> Journey {
    let mut secrets = vec![
        connect_local::SANDBOX_API_KEY.to_owned(),
        connect_local::LOCAL_WEBHOOK_SECRET.to_owned(),
        BEARER.to_owned(),
        WEBHOOK_BODY_MARK.to_owned(),
    ];
    let mut ran: Vec<(&str, PathBuf, Vec<&str>, bool)> = Vec::new();
    let body_of = |answer: &Value| -> Value {
        serde_json::from_str(answer["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
    };
    let bearer = format!("Bearer {BEARER}");
    let authorized = |event: Event| event.user(user).header("authorization", &bearer);

    let (mut session, log) = setup.session("create-link").await;
    // A preselected bank: the sandbox's page then needs only the decision.
    let link = authorized(Event::post("/links"))
        .json(&json!({"provider": "sandbox-barclays"}))
        .request_id("m-1")
        .to_json();
    let answer = session.invoke(&link, INVOKE_TIMEOUT).await.unwrap();
    let (status, answer) = answer.http().unwrap();
    assert_eq!(status, 201, "{answer}");
    let consent_id = body_of(&answer)["consent_id"].as_str().unwrap().to_owned();
    session.stop().await;
    ran.push(("create-link", log, vec!["POST /links"], true));

    // The user approves at the bank, which sends the browser to our callback.
    let back = approve_at_sandbox(setup, &consent_id).await;
    let query: HashMap<String, String> = back.query_pairs().into_owned().collect();
    let state = query["state"].clone();
    secrets.push(state.clone());

    let (mut session, log) = setup.session("callback").await;
    let answer = session
        .invoke(
            &Event::get("/callback")
                .query_pairs(&[("fx_consent", &consent_id), ("state", &state)])
                .request_id("m-2")
                .to_json(),
            INVOKE_TIMEOUT,
        )
        .await
        .unwrap();
    let (status, answer) = answer.http().unwrap();
    assert_eq!(status, 303, "{answer}");
    let location = url::Url::parse(answer["headers"]["location"].as_str().unwrap()).unwrap();
    let code =
        connect_testkit::pkce::fragment_code(&location).expect("the code is in the fragment");
    secrets.push(code.clone());
    session.stop().await;
    ran.push(("callback", log, vec!["GET /callback"], true));

    let (mut session, log) = setup.session("confirm").await;
    let confirm = authorized(Event::post(&format!("/consents/{consent_id}/confirm")))
        .json(&json!({ "code": code }))
        .request_id("m-3")
        .to_json();
    let answer = session.invoke(&confirm, INVOKE_TIMEOUT).await.unwrap();
    assert_eq!(answer.http().unwrap().0, 200);
    session.stop().await;
    ran.push(("confirm", log, vec!["POST /consents/{id}/confirm"], true));

    // The account numbers as Finexer has them, to look for in the logs.
    let record = setup
        .stack
        .state
        .app
        .store
        .consent(&consent_id)
        .await
        .unwrap()
        .unwrap();
    let accounts: Value = reqwest::Client::new()
        .get(format!("{}/bank_accounts", setup.sandbox.base_url()))
        .basic_auth(connect_local::SANDBOX_API_KEY, Some(""))
        .query(&[("customer", &record.customer_id), ("consent", &consent_id)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let numbers: Vec<String> = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|account| {
            let id = &account["identification"];
            [&id["account_number"], &id["iban"], &id["pan"]]
        })
        .filter_map(|number| number.as_str().map(str::to_owned))
        .collect();
    assert!(!numbers.is_empty(), "{accounts}");
    secrets.extend(numbers);

    let (mut session, log) = setup.session("consents").await;
    let read = authorized(Event::get(&format!("/consents/{consent_id}")))
        .request_id("m-4")
        .to_json();
    let answer = session.invoke(&read, INVOKE_TIMEOUT).await.unwrap();
    assert_eq!(answer.http().unwrap().0, 200);
    let read = authorized(Event::get(&format!("/consents/{consent_id}/accounts")))
        .request_id("m-4b")
        .to_json();
    let answer = session.invoke(&read, INVOKE_TIMEOUT).await.unwrap();
    assert_eq!(answer.http().unwrap().0, 200);
    session.stop().await;
    ran.push((
        "consents",
        log,
        vec!["GET /consents/{id}", "GET /consents/{id}/accounts"],
        true,
    ));

    let (mut session, log) = setup.session("webhook").await;
    let delivery = json!({"id": "evt_metrics_1", "object": "event", "type": "consent.authorized",
        "data": {"object": {"id": consent_id, "object": "consent", "metadata": {"note": WEBHOOK_BODY_MARK}}}})
    .to_string();
    let signature = finexer_sandbox::forgeries::signed_at(
        connect_local::LOCAL_WEBHOOK_SECRET,
        time::OffsetDateTime::now_utc(),
        delivery.as_bytes(),
    );
    let unsigned = Event::post("/webhooks/finexer")
        .header("content-type", "application/json")
        .text(&delivery);
    let signed = unsigned.clone().header("fx-signature", &signature);
    let answer = session
        .invoke(&signed.request_id("m-5").to_json(), INVOKE_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(answer.http().unwrap().0, 200);
    let answer = session
        .invoke(&unsigned.request_id("m-6").to_json(), INVOKE_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(answer.http().unwrap().0, 401);
    session.stop().await;
    ran.push((
        "webhook",
        log,
        vec!["POST /webhooks/finexer", "POST /webhooks/finexer"],
        false,
    ));

    let (mut session, log) = setup.session("revoke").await;
    let answer = session
        .invoke(
            &authorized(Event::post(&format!("/consents/{consent_id}/revoke")))
                .request_id("m-7")
                .to_json(),
            INVOKE_TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(answer.http().unwrap().0, 200);
    session.stop().await;
    ran.push(("revoke", log, vec!["POST /consents/{id}/revoke"], true));

    let (mut session, log) = setup.session("reconcile").await;
    let answer = session.invoke(&json!({}), INVOKE_TIMEOUT).await.unwrap();
    assert!(!answer.error, "{}", String::from_utf8_lossy(&answer.body));
    session.stop().await;
    ran.push(("reconcile", log, vec!["schedule"], false));
    Journey {
        ran,
        secrets,
        consent_id,
    }
}

/// Lambda's log level at its most verbose, and `RUST_LOG` asking for every
/// crate at TRACE by name (runtime, HTTP, AWS SDK): the journey's binaries
/// still print no token, state, code, key, webhook body or account number.
/// lambda_runtime logs each raw event at TRACE and the AWS SDK each request
/// and response; the subscriber holds every crate but ours at INFO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_level_run_prints_no_secret() {
    let setup = Setup::start(&[
        ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
        (
            "RUST_LOG",
            "trace,lambda_runtime=trace,lambda_runtime::layers=trace,lambda_http=trace,\
             aws_smithy_runtime=trace,aws_config=trace,hyper=trace,reqwest=trace",
        ),
        ("ACCOUNT_DATA_ENABLED", "true"),
    ])
    .await;
    let journey = journey(&setup, "trace-user").await;
    let mut own_debug_lines = 0;
    for (function, log, _, _) in &journey.ran {
        let text = std::fs::read_to_string(log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for secret in &journey.secrets {
            assert!(
                !emf::leaks(&lines, secret),
                "{function} printed a secret at TRACE ({})",
                log.display()
            );
        }
        assert!(
            !text.contains("raw JSON event"),
            "{function}: the runtime's raw event line ({})",
            log.display()
        );
        own_debug_lines += lines.iter().filter(|l| l.contains("DEBUG")).count();
    }
    // The level took: our own DEBUG lines are there (the webhook's "nothing
    // to record" for a consent already authorized).
    assert!(own_debug_lines > 0, "no DEBUG line: was the run at TRACE?");
    let work = setup.stop().await;
    let _ = std::fs::remove_dir_all(&work);
}

/// The journey's binaries in their production log format (JSON): every EMF
/// line each prints is valid EMF, each function's metrics are there with
/// the contract's units and dimension sets, each invocation ends with one
/// JSON log line naming its route template (never the raw path), and no
/// token, code or key is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_prints_valid_metric_lines() {
    let namespace = "Connect/emulator";
    let setup = Setup::start(&[
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("METRICS_NAMESPACE", namespace),
        ("ACCOUNT_DATA_ENABLED", "true"),
    ])
    .await;
    let Journey {
        ran,
        secrets,
        consent_id,
    } = journey(&setup, "metrics-user").await;

    let mut documents = Vec::new();
    for (function, log, routes, with_consent) in &ran {
        let text = std::fs::read_to_string(log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for secret in &secrets {
            assert!(
                !emf::leaks(&lines, secret),
                "{function} printed a secret ({})",
                log.display()
            );
        }
        let own = emf::documents(lines.iter().copied());
        assert!(own.iter().all(|d| d["Function"] == *function), "{text}");
        let cold: Vec<_> = own
            .iter()
            .filter(|d| emf::names(d).contains(&"ColdStart"))
            .collect();
        assert_eq!(cold.len(), 1, "{function}: one cold start\n{text}");
        assert_eq!(emf::value(cold[0], "ColdStart"), 1.0);
        documents.extend(own);

        // One log line per invocation, at its end.
        let finished: Vec<Value> = lines
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["fields"]["message"] == "invocation finished")
            .collect();
        assert_eq!(finished.len(), routes.len(), "{function}:\n{text}");
        for (line, route) in finished.iter().zip(routes) {
            let fields = &line["fields"];
            assert_eq!(line["level"], "INFO", "{line}");
            assert_eq!(fields["function"], *function, "{line}");
            assert_eq!(fields["route"], *route, "{line}");
            assert!(fields["status"].as_u64().is_some(), "{line}");
            assert!(fields["duration_ms"].as_u64().is_some(), "{line}");
            assert!(
                fields["request_id"]
                    .as_str()
                    .is_some_and(|id| id.contains("-bench-")),
                "{line}"
            );
            if *with_consent {
                assert_eq!(fields["consent_id"], consent_id.as_str(), "{line}");
            }
        }
    }

    let expect = |function: &str, metric: &str, dimensions: &[(&str, &str)]| {
        emf::expect(&documents, namespace, function, metric, dimensions).clone()
    };
    expect("create-link", "LinkCreated", &[]);
    expect("create-link", "SecretsRefresh", &[]);
    for operation in ["create_customer", "create_consent"] {
        let line = expect("create-link", "FinexerCall", &[("Operation", operation)]);
        assert!(emf::value(&line, "FinexerLatency") >= 0.0, "{line}");
        assert!(line.get("FinexerError").is_none(), "{line}");
    }
    expect("callback", "Callback", &[("Outcome", "approved")]);
    expect(
        "callback",
        "FinexerLatency",
        &[("Operation", "get_consent")],
    );
    expect("confirm", "Confirmation", &[("Outcome", "confirmed")]);
    expect(
        "webhook",
        "WebhookEvent",
        &[("EventType", "consent.authorized"), ("Verdict", "handled")],
    );
    expect("webhook", "WebhookRefused", &[]);
    expect("revoke", "Revocation", &[("Outcome", "completed")]);
    expect("revoke", "FinexerCall", &[("Operation", "revoke_consent")]);
    let run = expect("reconcile", "ReconcileDue", &[]);
    for metric in [
        "ReconcileProcessed",
        "ReconcileFailed",
        "RevokePendingOverdue",
    ] {
        expect("reconcile", metric, &[]);
        assert!(run[metric].is_number(), "one line per run: {run}");
    }

    let work = setup.stop().await;
    let _ = std::fs::remove_dir_all(&work);
}

/// A cold start whose start-up prefetch fails (moto, so Secrets Manager and
/// DynamoDB, refused: the proxy in front of it is cut) still initialises and
/// waits for events; once moto is back, its first request fetches the secret
/// itself and succeeds. The failure is logged without a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_startup_prefetch_leaves_the_work_to_the_first_request() {
    let moto = connect_testkit::proxy::Proxy::start(connect_testkit::aws::moto_address()).await;
    moto.cut().await;
    let setup = Setup::start(&[
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
    ])
    .await;
    let (mut session, log) = setup.session("create-link").await;

    // The prefetch runs after init; wait (bounded) until each part has failed.
    let waited = Instant::now();
    let logged = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let failed: Vec<&str> = text
            .lines()
            .filter(|line| line.contains("start-up prefetch failed"))
            .collect();
        if ["\"state_keys\"", "\"finexer_api_key\"", "\"dynamodb\""]
            .iter()
            .all(|part| failed.iter().any(|line| line.contains(part)))
        {
            break text;
        }
        assert!(
            waited.elapsed() < INIT_TIMEOUT,
            "no prefetch failure logged for the secrets and DynamoDB: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !logged.contains("invocation finished"),
        "the prefetch failed before any request: {logged}"
    );
    session.alive().unwrap();
    assert_eq!(session.init_error(), None);

    moto.restore();
    let link = Event::post("/links")
        .user(USER)
        .json(&json!({"provider": "sandbox-barclays"}))
        .request_id("after-outage")
        .to_json();
    let answer = session.invoke(&link, INVOKE_TIMEOUT).await.unwrap();
    let (status, answer) = answer.http().unwrap();
    assert_eq!(status, 201, "{answer}");
    session.stop().await;

    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [
        connect_local::SANDBOX_API_KEY,
        connect_local::LOCAL_WEBHOOK_SECRET,
    ] {
        assert!(!text.contains(secret), "the log shows a secret: {text}");
    }
    let work = setup.stop().await;
    let _ = std::fs::remove_dir_all(work);
}

/// Approves `consent_id` on the sandbox's consent page, as the user would:
/// the callback URL (with its `state`) the browser is sent to.
async fn approve_at_sandbox(setup: &Setup, consent_id: &str) -> url::Url {
    decide_at_consent_page(&setup.sandbox.base_url(), consent_id, Decision::Approve).await
}

/// A link made by the production handler on the stack's store: its id.
async fn link(setup: &Setup, user: &str) -> String {
    let app = &setup.stack.state.app;
    let response = shared::handlers::create_link(
        app,
        Event::post("/links")
            .user(user)
            .json(&json!({"provider": "sandbox-barclays"}))
            .request(),
    )
    .await;
    assert_eq!(response.status(), 201);
    let link: shared::handlers::LinkCreated = match response.body() {
        lambda_http::Body::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("{other:?}"),
    };
    link.consent_id
}

/// The deployed reconciler takes no clock from its payload: given
/// `{"at": "2099-01-01T00:00:00Z"}` it acts now, so a consent inside its
/// confirmation window stays authorized and no record's next look moves.
/// The same payload through the test hook (the local stack's reconcile,
/// built with `test-util`) does move them: the test can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_reconciler_takes_no_clock_from_its_payload() {
    let setup = Setup::start(&[]).await;
    let app = &setup.stack.state.app;
    let user = "clock-user";
    // One approved and called back (authorized, unconfirmed: due when its
    // confirmation window closes), one left pending (due when its state lapses).
    let approved = link(&setup, user).await;
    let back = approve_at_sandbox(&setup, &approved).await;
    let response = shared::handlers::callback(
        app,
        Event::get("/callback")
            .query(back.query().unwrap())
            .request(),
    )
    .await;
    assert_eq!(response.status(), 303);
    let pending = link(&setup, user).await;
    let before = [
        app.store.consent(&approved).await.unwrap().unwrap(),
        app.store.consent(&pending).await.unwrap().unwrap(),
    ];
    assert_eq!(before[0].status, shared::consent::ConsentStatus::Authorized);
    assert!(before[0].milestones.confirm_by.is_some() && before[0].due_at.is_some());
    assert_eq!(before[1].status, shared::consent::ConsentStatus::Pending);

    let (mut session, log) = setup.session("reconcile").await;
    for payload in [
        json!({"at": "2099-01-01T00:00:00Z"}),
        json!({"at": "2099-01-01T00:00:00Z", "budget_ms": 0}),
    ] {
        let answer = session.invoke(&payload, INVOKE_TIMEOUT).await.unwrap();
        assert!(!answer.error, "{}", String::from_utf8_lossy(&answer.body));
    }
    session.stop().await;
    let after = [
        app.store.consent(&approved).await.unwrap().unwrap(),
        app.store.consent(&pending).await.unwrap().unwrap(),
    ];
    assert_eq!(after, before, "the deployed reconciler changed a record");
    let text = std::fs::read_to_string(&log).unwrap();
    let runs: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("reconcile run finished"))
        .collect();
    assert_eq!(runs.len(), 2, "{text}");
    assert!(
        runs.iter().all(|line| line.contains("due=0")),
        "nothing is due now: {text}"
    );

    // The control: the test hook, given the same time, revokes the consent
    // whose window has closed by then and moves the pending one's next look.
    let run: shared::handlers::reconcile::Run =
        serde_json::from_value(json!({"at": "2099-01-01T00:00:00Z"})).unwrap();
    let report = shared::handlers::reconcile(app, run).await.unwrap();
    assert_eq!(report.due, 2, "{report:?}");
    let hooked = app.store.consent(&approved).await.unwrap().unwrap();
    assert_ne!(hooked.status, shared::consent::ConsentStatus::Authorized);
    let work = setup.stop().await;
    let _ = std::fs::remove_dir_all(&work);
}

/// Secrets Manager and DynamoDB unreachable (the functions' AWS endpoint is
/// a closed port; Finexer is up): every function answers every event below
/// 500, or 503 with `Retry-After`, from one process; the reconciler's run
/// fails (so the scheduler retries it) without ending its process. A few
/// events per route, since each waits out the AWS SDK's retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_outage_is_answered_503_never_500() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let setup = Setup::start(&[("AWS_ENDPOINT_URL", closed.as_str())]).await;
    // Shaped like a state token (so it passes the pre-check) but signed by nobody.
    let shaped = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImluaXRpYWwifQ.e30.c2lnbmF0dXJl";
    // One process per function, all at once: most of the time goes to the
    // AWS clients' retries and their backoff, which overlap.
    let per_function = Function::ALL
        .into_iter()
        .filter(|f| !f.is_scheduled())
        .map(|function| outage_events(&setup, function, shaped));
    let mut failures = Vec::new();
    let mut total = 0;
    let mut unavailable = 0;
    for (function_failures, function_total, function_unavailable) in
        futures::future::join_all(per_function).await
    {
        failures.extend(function_failures);
        total += function_total;
        unavailable += function_unavailable;
    }
    // The scheduled reconciler: its run fails, its process stays.
    let (mut session, _) = setup.session("reconcile").await;
    let answer = session.invoke(&json!({}), INVOKE_TIMEOUT).await.unwrap();
    assert!(answer.error, "{}", String::from_utf8_lossy(&answer.body));
    assert!(session.alive().is_ok());
    session.stop().await;

    let work = setup.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {total} events failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The outage was met (not every event was refused before AWS was asked).
    assert!(unavailable > 0, "no event reached AWS");
    let _ = std::fs::remove_dir_all(&work);
}

/// Sends `function` each of its routes as sent, with hostile text in it and
/// with a hostile body, during the outage: (failures, events, 503s).
async fn outage_events(
    setup: &Setup,
    function: Function,
    shaped: &str,
) -> (Vec<String>, usize, usize) {
    let mut failures = Vec::new();
    let mut total = 0;
    let mut unavailable = 0;
    let (mut session, log) = setup.session(function.name()).await;
    let mut events: Vec<(String, Value)> = Vec::new();
    for route in routes(function) {
        let name = route["routeKey"].as_str().unwrap().to_owned();
        events.push((format!("{name}: as sent"), route.clone()));
        for text in ["%00%00%00", shaped] {
            let (what, event) = placed(&route, text).swap_remove(0);
            events.push((format!("{name}: {what}"), event));
        }
        let (what, event) = bodies(&route).swap_remove(0);
        events.push((format!("{name}: {what}"), event));
    }
    for (what, event) in events {
        total += 1;
        match session.invoke(&event, INVOKE_TIMEOUT).await {
            Err(e) => {
                failures.push(format!("{function} {what}: {e}"));
                break;
            }
            Ok(outcome) => match outcome.http() {
                Some((status, _)) if status < 500 => {}
                Some((503, answer)) => {
                    unavailable += 1;
                    if answer["headers"]["retry-after"].as_str().is_none() {
                        failures.push(format!("{function} {what}: 503 without Retry-After"));
                    }
                }
                Some((status, answer)) => {
                    failures.push(format!("{function} {what}: {status} {answer}"))
                }
                None => failures.push(format!(
                    "{function} {what}: not an API Gateway response: {}",
                    String::from_utf8_lossy(&outcome.body)
                )),
            },
        }
    }
    if let Err(e) = session.alive() {
        failures.push(e);
    }
    session.stop().await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if text.contains("panicked") {
        failures.push(format!("{function} panicked (log: {})", log.display()));
    }
    (failures, total, unavailable)
}
