//! Property tests of the untrusted inputs (issue 5): the callback's query,
//! state tokens, the create-link body, Finexer's consent JSON and return
//! targets. Case counts are fixed so that the whole binary stays a few seconds
//! in debug; `PROPERTY_SCALE=N` multiplies them for a longer run.
//!
//! No emulator is needed: the app runs over the in-memory store and fixed
//! secrets, against a Finexer nobody listens on (`127.0.0.1:9`, so anything
//! that reaches Finexer ends in a fast 503) or a wiremock one on 127.0.0.1.
//! The oracle (what each handler must answer, `connect_testkit::model`) is
//! shared with the cargo-fuzz targets in `fuzz/`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use connect_testkit::model::{self, FRONTENDS, LinkInput, Outcome};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lambda_http::{Body, Response};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use shared::consent::ConsentStatus;
use shared::finexer::Consent;
use shared::http::{MAX_BODY_BYTES, ReturnTarget};
use shared::secrets::AppSecrets;
use shared::state;
use shared::store::StateRecord;
use url::Url;

// ---------------------------------------------------------------- helpers

/// `n` cases (times `PROPERTY_SCALE`), no regression files written.
fn cases(n: u32) -> PropConfig {
    let scale = std::env::var("PROPERTY_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    PropConfig {
        cases: n.saturating_mul(scale),
        failure_persistence: None,
        ..PropConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs a property with a manual runner (for the async ones) and panics with
/// proptest's minimal failing case.
fn check<S: Strategy>(
    config: PropConfig,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(config);
    if let Err(failure) = runner.run(&strategy, test) {
        panic!("{failure}");
    }
}

fn pct_all(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

fn allowed() -> Vec<Url> {
    FRONTENDS.iter().map(|u| Url::parse(u).unwrap()).collect()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn body_text(response: &Response<Body>) -> String {
    match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

/// Any JSON value: every type, nulls, odd strings and keys that the types
/// under test know, nested a few levels.
fn arb_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "pending",
            "authorized",
            "canceled",
            "cancelled",
            "Authorized",
            "revoke_pending",
            "bc_1",
            "",
            "https://app.example.com/return",
        ])
        .prop_map(Value::from),
    ];
    let key = prop_oneof![
        3 => prop::sample::select(vec![
            "id", "status", "provider", "customer", "authed_at", "expiry_date", "redirect",
            "return_url", "consent_url", "template", "skip_info", "skip_qr", "return_to",
            "object", "metadata",
        ])
        .prop_map(String::from),
        1 => "\\PC{0,6}",
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

// ---------------------------------------------------------------- callback

const ID_VALUES: &[&str] = &[
    "bc_pending",
    "bc_done",
    "bc_revoked",
    "bc_bound",
    "bc_unknown",
    "bc%5Fpending",
    "bc_pending%20",
    "BC_PENDING",
    "bc_pending%00",
    "bc_done%0D%0A",
    "..",
    "bc%2F..%2Fdone",
    "",
];

const ODD_VALUES: &[&str] = &[
    "%",
    "%%",
    "%zz",
    "%4",
    "%FF%FE",
    "%C3%28",
    "%E2%82",
    "%ED%A0%80",
    "%00",
    "+",
    "%2B",
    "a+b%20c",
    "%26state%3D",
    "access_denied",
    "%3Cscript%3Ealert(1)%3C/script%3E",
    "%22%3E%3Cb%3E",
    "%3D%3D",
    "=",
    "==",
];

/// `text` edited at byte `at` (ASCII text): 0 replaces the character there
/// with `with`, 1 inserts `with` before it, 2 deletes it, 3 cuts the text off
/// there, 4 cuts it off and appends `with`.
fn edit(text: &str, at: usize, with: &str, how: u8) -> String {
    let (head, tail) = text.split_at(at);
    match how {
        0 => format!("{head}{with}{}", &tail[1..]),
        1 => format!("{head}{with}{tail}"),
        2 => format!("{head}{}", &tail[1..]),
        3 => head.to_owned(),
        _ => format!("{head}{with}"),
    }
}

/// A state value: a genuine token (as is, or edited), or anything else.
fn state_value(tokens: Vec<String>) -> impl Strategy<Value = String> {
    let edited = (
        prop::sample::select(tokens.clone()),
        any::<Index>(),
        "[A-Za-z0-9_.=-]",
        0..4u8,
    )
        .prop_map(|(token, at, with, how)| edit(&token, at.index(token.len()), &with, how));
    prop_oneof![
        4 => prop::sample::select(tokens),
        3 => edited,
        1 => "[A-Za-z0-9_.-]{0,60}",
    ]
}

fn query_value(tokens: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(ID_VALUES.to_vec()).prop_map(String::from),
        5 => state_value(tokens),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| pct_all(&b)),
        1 => prop::sample::select(ODD_VALUES.to_vec()).prop_map(String::from),
        1 => "\\PC{0,20}".prop_map(|s| model::escape_query(&s)),
        1 => (100usize..6000).prop_map(|n| "x".repeat(n)),
    ]
}

fn query_name() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => Just("fx_consent".to_owned()),
        5 => Just("state".to_owned()),
        2 => Just("error".to_owned()),
        1 => prop::sample::select(vec![
            "fx%5Fconsent", "%73tate", "FX_CONSENT", "state%00", "", "error_description",
            "fx_consent[]",
            "%3Cb%3Ex%3C%2Fb%3E", "state%20", "%FFstate",
        ])
        .prop_map(String::from),
        1 => "[a-z_]{0,8}",
    ]
}

/// A query as Finexer sends it back: a seeded consent id, its own state,
/// another's, an edited one or none, maybe an error, maybe noise, in any
/// order and encoding.
fn journey_query(tokens: Vec<String>) -> impl Strategy<Value = String> {
    let ids = ["bc_pending", "bc_done", "bc_revoked", "bc_bound"];
    (
        0..ids.len(),
        0..4u8,
        prop::option::weighted(
            0.3,
            prop::sample::select(vec!["access_denied", "", "%FF", "x+y"]),
        ),
        state_value(tokens.clone()),
        prop::collection::vec(("[a-z_]{1,6}", "[a-z0-9%]{0,8}"), 0..3),
        any::<Index>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(move |(id, state, error, other, noise, order, encode)| {
            let encode = |text: &str| {
                if encode {
                    pct_all(text.as_bytes())
                } else {
                    text.to_owned()
                }
            };
            let mut pairs = vec![format!("fx_consent={}", encode(ids[id]))];
            match state {
                0 | 1 => pairs.push(format!("state={}", encode(&tokens[id]))),
                2 => pairs.push(format!("state={other}")),
                _ => {}
            }
            if let Some(error) = error {
                pairs.push(format!("error={error}"));
            }
            pairs.extend(noise.into_iter().map(|(k, v)| format!("{k}={v}")));
            let n = pairs.len();
            pairs.rotate_left(order.index(n));
            pairs.join("&")
        })
}

fn query_strategy(tokens: Vec<String>) -> impl Strategy<Value = String> {
    let pair = (
        query_name(),
        query_value(tokens.clone()),
        0..6u8, // how the pair is written
    )
        .prop_map(|(name, value, how)| match how {
            // Fully percent-encoded: decodes to the same pair.
            0 => format!("{}={}", pct_all(&decode(&name)), pct_all(&decode(&value))),
            1 => name,
            2 => format!("={value}"),
            _ => format!("{name}={value}"),
        });
    let separator = prop::sample::select(vec!["&", "&", "&", "&", "&&", ";", "&amp;"]);
    let structured = prop::collection::vec((pair, separator), 0..6).prop_map(|pairs| {
        let mut query = String::new();
        for (i, (pair, separator)) in pairs.into_iter().enumerate() {
            if i > 0 {
                query.push_str(separator);
            }
            query.push_str(&pair);
        }
        query
    });
    prop_oneof![
        6 => journey_query(tokens.clone()),
        8 => structured,
        2 => "[ -~]{0,200}".prop_map(|s| model::escape_invalid_query_bytes(s.as_bytes())),
        1 => "\\PC{0,80}".prop_map(|s| model::escape_query(&s)),
        1 => prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| model::escape_invalid_query_bytes(&b)),
    ]
}

/// The bytes a percent-encoded string stands for.
fn decode(text: &str) -> Vec<u8> {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default()
}

#[test]
fn callback_examples() {
    let rt = runtime();
    let fixture = rt.block_on(model::Fixture::new(model::DEAD_FINEXER));
    let token = |id: &str| fixture.consent(id).unwrap().token.clone();
    let (pending, done, revoked) = (token("bc_pending"), token("bc_done"), token("bc_revoked"));
    let bound = token("bc_bound");
    let right = format!("{}={}", model::BINDING_COOKIE, model::BINDING);
    let wrong = format!("{}=other", model::BINDING_COOKIE);
    let with_cookie = [
        (
            format!("fx_consent=bc_bound&state={bound}"),
            None,
            Outcome::Unavailable,
        ),
        (
            format!("fx_consent=bc_bound&state={bound}"),
            Some(right.clone()),
            Outcome::Unavailable,
        ),
        // Cookies play no part any more, a stale one included.
        (
            format!("fx_consent=bc_bound&state={bound}"),
            Some(wrong.clone()),
            Outcome::Unavailable,
        ),
        (
            format!("fx_consent=bc_bound&state={bound}&error=x"),
            Some(wrong.clone()),
            Outcome::Unavailable,
        ),
        (
            "fx_consent=bc_bound&error=x".to_owned(),
            Some(wrong.clone()),
            Outcome::Unfinished,
        ),
        (
            format!("fx_consent=bc_done&state={done}"),
            Some(wrong),
            Outcome::Redirect,
        ),
        (
            format!("fx_consent=bc_done&state={done}"),
            Some(right),
            Outcome::Redirect,
        ),
    ];
    let cases = [
        (
            format!("fx_consent=bc_pending&state={pending}"),
            Outcome::Unavailable,
        ),
        (
            format!(
                "{}={}&{}={}",
                pct_all(b"fx_consent"),
                pct_all(b"bc_pending"),
                pct_all(b"state"),
                pct_all(pending.as_bytes())
            ),
            Outcome::Unavailable,
        ),
        (
            format!("state={done}&fx_consent=bc_done"),
            Outcome::Redirect,
        ),
        // Without a state: the one page, whatever the consent.
        (
            "fx_consent=bc_done&error=access_denied".into(),
            Outcome::Unfinished,
        ),
        (
            "fx_consent=bc_pending&error=access_denied".into(),
            Outcome::Unfinished,
        ),
        ("fx_consent=bc_unknown".into(), Outcome::Unfinished),
        (
            format!("fx_consent=bc_pending&error=x&state={pending}"),
            Outcome::Unavailable,
        ),
        (
            format!("fx_consent=bc_revoked&state={revoked}"),
            Outcome::Refused,
        ),
        (
            format!("fx_consent=bc_pending&state={done}"),
            Outcome::Refused,
        ),
        (
            format!("fx_consent=bc_done&state={pending}&error=x"),
            Outcome::Refused,
        ),
        (
            format!("fx_consent=bc_pending&state={pending}&state={pending}"),
            Outcome::Refused,
        ),
        (
            format!("fx_consent=bc_pending&state={pending}x"),
            Outcome::Refused,
        ),
        (
            format!(
                "fx_consent=bc_pending&state={pending}&x={}",
                "y".repeat(4096)
            ),
            Outcome::Refused,
        ),
        ("fx_consent=bc_pending".into(), Outcome::Unfinished),
        ("fx_consent=%FF&state=%FF".into(), Outcome::Refused),
        (String::new(), Outcome::Refused),
        ("%3Cb%3E=1&%3Cb%3E=2".into(), Outcome::Refused),
    ];
    let cases = cases
        .into_iter()
        .map(|(query, expected)| (query, None, expected))
        .chain(with_cookie);
    for (query, cookie, expected) in cases {
        let cookie = cookie.as_deref();
        assert_eq!(
            fixture.expected_callback(&query, cookie),
            expected,
            "model: {query} {cookie:?}"
        );
        let request = model::callback_request_with_cookie(&query, cookie).expect("valid query");
        let response = rt.block_on(shared::handlers::callback(&fixture.app, request));
        let outcome = rt.block_on(fixture.check_callback(&query, cookie, &response));
        assert_eq!(outcome, Ok(expected), "{query} {cookie:?}");
    }
}

/// A `Cookie` header: none, the bound consent's binding, another, or odd ones.
fn cookie_header() -> impl Strategy<Value = Option<String>> {
    let binding = model::BINDING;
    let name = model::BINDING_COOKIE;
    prop_oneof![
        4 => Just(None),
        2 => Just(Some(format!("{name}={binding}"))),
        1 => prop::sample::select(vec![
            format!("a=1; {name}={binding}; b=2"),
            format!("{name}={binding}x"),
            format!("{name}="),
            format!("{name}={binding}; {name}=other"),
            format!("{name}=other; {name}={binding}"),
            format!(" {name} = {binding}"),
            format!("__host-fx_bind={binding}"),
            format!("{name}=\"{binding}\""),
            "other=1".to_owned(),
            String::new(),
        ])
        .prop_map(Some),
        1 => "[ -~]{0,40}".prop_map(move |c| Some(format!("{name}={c}"))),
    ]
}

/// For arbitrary queries: never a panic, 400 unless the state is genuine, a
/// 503 only where Finexer was asked, a redirect only for a genuine state (or
/// the stateless reload of a finished consent), never a record changed.
#[test]
fn callback_answers_only_genuine_states() {
    let rt = runtime();
    let fixture = rt.block_on(model::Fixture::new(model::DEAD_FINEXER));
    let tokens: Vec<String> = fixture.tokens().into_iter().map(str::to_owned).collect();
    let seen: RefCell<BTreeMap<String, usize>> = RefCell::default();
    let strategy = (query_strategy(tokens), cookie_header());
    check(cases(1000), strategy, |(query, cookie)| {
        let request = model::callback_request_with_cookie(&query, cookie.as_deref())
            .ok_or_else(|| TestCaseError::reject("not a valid request URI"))?;
        let as_seen = request.uri().query().unwrap_or_default().to_owned();
        let response = rt.block_on(shared::handlers::callback(&fixture.app, request));
        let outcome = rt
            .block_on(fixture.check_callback(&as_seen, cookie.as_deref(), &response))
            .map_err(TestCaseError::fail)?;
        *seen.borrow_mut().entry(format!("{outcome:?}")).or_default() += 1;
        Ok(())
    });
    let seen = seen.into_inner();
    println!("callback outcomes: {seen:?}");
    for outcome in ["Refused", "Unavailable", "Redirect"] {
        assert!(
            seen.get(outcome).copied().unwrap_or(0) > 0,
            "{outcome} never reached: {seen:?}"
        );
    }
}

// ---------------------------------------------------------------- Finexer (wiremock)

#[derive(Clone)]
struct FinexerAnswer {
    status: u16,
    body: Vec<u8>,
    denied: bool,
}

impl std::fmt::Debug for FinexerAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinexerAnswer")
            .field("status", &self.status)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("denied", &self.denied)
            .finish()
    }
}

/// A consent as the sandbox shows it.
fn sandbox_consent(id: &str, status: &str) -> Value {
    json!({
        "id": id, "object": "consent",
        "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z",
        "renewed_at": null, "provider": "sandbox-barclays", "customer": "cus_0",
        "consent_link": format!("http://127.0.0.1:4577/connect/{id}"),
        "failure_code": null, "failure_message": null,
        "expiry_date": "2027-02-23T10:00:00Z", "retro_date": null,
        "scopes": ["accounts", "balance", "transactions"],
        "authed_at": if status == "authorized" { json!("2026-11-25T10:00:00Z") } else { Value::Null },
        "status": status,
        "redirect": {"return_url": model::CALLBACK_URL, "consent_url": format!("http://127.0.0.1:4577/connect/{id}")},
        "metadata": {"state_id": "jti"}
    })
}

const CONSENT_FIELDS: &[&str] = &[
    "id",
    "status",
    "provider",
    "customer",
    "authed_at",
    "expiry_date",
    "redirect",
    "scopes",
    "metadata",
];

fn status_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "new", "pending", "authorized", "failed", "expired", "canceled", "cancelled",
            "revoke_pending",
        ])
        .prop_map(String::from),
        1 => prop::sample::select(vec![
            "Authorized", "AUTHORIZED", "authorised", " authorized", "authorized\n", "",
            "revoked", "suspended", "canceled ", "Other",
        ])
        .prop_map(String::from),
        1 => "\\PC{0,16}",
    ]
}

/// Sandbox-shaped consents made worse: fields dropped, nulled or of the
/// wrong type, unknown statuses, redirects broken.
fn consent_value() -> impl Strategy<Value = Value> {
    let wrong = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(json!([])),
        Just(json!(["authorized"])),
        Just(json!({})),
        Just(json!({"return_url": 1})),
        Just(json!({"consent_url": null, "return_url": "x"})),
        Just(json!(["a", null])),
        Just(json!(1.5)),
        "\\PC{0,10}".prop_map(Value::String),
    ];
    let edit = (prop::sample::select(CONSENT_FIELDS.to_vec()), 0..3u8, wrong);
    (
        status_string(),
        prop::collection::vec(edit, 0..4),
        any::<bool>(),
    )
        .prop_map(|(status, edits, as_array)| {
            let mut value = sandbox_consent("bc_x", &status);
            let object = value.as_object_mut().unwrap();
            for (field, how, wrong) in edits {
                match how {
                    0 => {
                        object.remove(field);
                    }
                    1 => {
                        object.insert(field.into(), Value::Null);
                    }
                    _ => {
                        object.insert(field.into(), wrong);
                    }
                }
            }
            if as_array {
                // serde takes a struct as its fields in order, too.
                let fields = [
                    "id",
                    "status",
                    "provider",
                    "customer",
                    "authed_at",
                    "expiry_date",
                ];
                Value::Array(
                    fields
                        .iter()
                        .map(|f| object.get(*f).cloned().unwrap_or(Value::Null))
                        .collect(),
                )
            } else {
                value
            }
        })
}

fn finexer_answer() -> impl Strategy<Value = FinexerAnswer> {
    let body = prop_oneof![
        6 => consent_value().prop_map(|v| v.to_string().into_bytes()),
        1 => arb_json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    (
        prop::sample::select(vec![
            200, 200, 200, 200, 200, 200, 201, 204, 400, 404, 429, 500,
        ]),
        body,
        prop::bool::weighted(0.25),
    )
        .prop_map(|(status, body, denied)| FinexerAnswer {
            status,
            body,
            denied,
        })
}

/// The callback with Finexer answering anything: a parseable outcome is
/// recorded and redirected, a parseable non-outcome is a 409, an unreadable
/// answer or a Finexer failure a 503, a Finexer 4xx a 400. Never another 5xx.
#[test]
fn callback_survives_any_finexer_answer() {
    let rt = runtime();
    let answer: Arc<Mutex<FinexerAnswer>> = Arc::new(Mutex::new(FinexerAnswer {
        status: 200,
        body: Vec::new(),
        denied: false,
    }));
    let server = rt.block_on(wiremock::MockServer::start());
    rt.block_on(
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .respond_with({
                let answer = answer.clone();
                move |_: &wiremock::Request| {
                    let answer = answer.lock().unwrap();
                    wiremock::ResponseTemplate::new(answer.status)
                        .insert_header("content-type", "application/json")
                        .set_body_bytes(answer.body.clone())
                }
            })
            .mount(&server),
    );
    let app = model::app(&server.uri());
    let counter = RefCell::new(0usize);
    let seen: RefCell<BTreeMap<u16, usize>> = RefCell::default();
    check(cases(160), finexer_answer(), |case| {
        *counter.borrow_mut() += 1;
        let id = format!("bc_e2e_{}", counter.borrow());
        let jti = format!("jti-{id}");
        let record = model::record(&id, &jti, ConsentStatus::Pending, FRONTENDS[1], false);
        rt.block_on(app.store.insert_consent(
            &record,
            &StateRecord {
                state_id: jti.clone(),
                consent_id: id.clone(),
                owner: model::USER.into(),
                expires_at: model::EXPIRES,
            },
        ))
        .unwrap();
        *answer.lock().unwrap() = case.clone();
        let mut query = format!(
            "fx_consent={id}&state={}",
            model::token(&jti, model::KEY_NEW)
        );
        if case.denied {
            query.push_str("&error=access_denied");
        }
        let request = model::callback_request(&query).unwrap();
        let response = rt.block_on(shared::handlers::callback(&app, request));
        let status = response.status().as_u16();
        *seen.borrow_mut().entry(status).or_default() += 1;
        let after = rt.block_on(app.store.consent(&id)).unwrap().unwrap();

        // A 204 carries no body, whatever the server was given.
        let received: &[u8] = if case.status == 204 { b"" } else { &case.body };
        let parsed = serde_json::from_slice::<Consent>(received);
        let expected = match case.status {
            200..=299 => match &parsed {
                Ok(consent) if consent.status.is_outcome() => 303,
                Ok(_) => 409,
                Err(_) => 503,
            },
            400 | 404 => 400,
            _ => 503,
        };
        prop_assert_eq!(status, expected, "{:?} -> {}", case, body_text(&response));
        if status == 303 {
            let consent = parsed.unwrap();
            let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
            prop_assert!(location.as_str().starts_with(FRONTENDS[1]), "{}", location);
            let pairs: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
            prop_assert_eq!(pairs.get("consent_id"), Some(&id));
            prop_assert_eq!(
                pairs.get("status").map(String::as_str),
                Some(consent.status.as_str())
            );
            prop_assert_eq!(&after.status, &consent.status);
            prop_assert_eq!(after.history.len(), 2);
            if consent.status == ConsentStatus::Authorized {
                prop_assert!(after.milestones.authorized_at.is_some());
            }
        } else {
            prop_assert_eq!(&after, &record, "a refused callback changed the record");
            prop_assert!(response.headers().get("location").is_none());
        }
        Ok(())
    });
    let seen = seen.into_inner();
    println!("callback statuses with a wiremock Finexer: {seen:?}");
    for status in [303, 400, 409, 503] {
        assert!(
            seen.contains_key(&status),
            "{status} never reached: {seen:?}"
        );
    }
}

// ---------------------------------------------------------------- state tokens

static SECRETS: LazyLock<AppSecrets> = LazyLock::new(model::secrets);
static GENUINE: LazyLock<String> = LazyLock::new(|| model::token("jti-props", model::KEY_NEW));

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

fn hmac(message: &str, algorithm: Algorithm, key: &str) -> String {
    jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(key.as_bytes()),
        algorithm,
    )
    .unwrap()
}

const CLAIMS: &[&str] = &["jti", "sub", "iss", "aud", "iat", "nbf", "exp"];

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        segment: usize,
        at: Index,
        bit: u8,
    },
    Replace {
        at: Index,
        with: char,
    },
    Truncate {
        at: Index,
    },
    Append(String),
    Insert {
        at: Index,
        text: String,
    },
    Remove {
        at: Index,
    },
    FlipCase {
        at: Index,
    },
    /// The header's `alg` rewritten, payload and signature kept.
    Alg(String),
    /// The header's `alg` rewritten and the token re-signed with our own key
    /// under that algorithm.
    AlgResigned(Algorithm),
    HeaderField(String, Value),
    SwapClaims(usize, usize),
    SetClaim(usize, Value),
    DropClaim(usize),
    /// Same claims, serialised in reverse key order.
    Reorder,
    /// The genuine claims signed with another key, named as ours.
    ForeignKey(String),
    /// The genuine claims signed with our old key but naming the new one.
    WrongKid,
    SwapSegments(usize, usize),
    Pad(usize),
    StandardAlphabet(usize),
    ExtraSegment(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let claim_value = prop_oneof![
        Just(json!("attacker")),
        Just(json!("connect")),
        Just(json!("connect-callback")),
        Just(json!(["connect-callback"])),
        Just(json!(null)),
        Just(json!(4_100_000_000i64)),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!("4000000000")),
    ];
    prop_oneof![
        (0..3usize, any::<Index>(), 0..8u8).prop_map(|(segment, at, bit)| Mutation::FlipBit {
            segment,
            at,
            bit
        }),
        (any::<Index>(), any::<char>()).prop_map(|(at, with)| Mutation::Replace { at, with }),
        any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        "\\PC{1,8}".prop_map(Mutation::Append),
        (any::<Index>(), "[A-Za-z0-9_.=-]{1,4}")
            .prop_map(|(at, text)| Mutation::Insert { at, text }),
        any::<Index>().prop_map(|at| Mutation::Remove { at }),
        any::<Index>().prop_map(|at| Mutation::FlipCase { at }),
        prop::sample::select(vec![
            "none", "None", "NONE", "HS384", "HS512", "RS256", "ES256", "PS256", "EdDSA", "hs256",
            "HS256 ", "",
        ])
        .prop_map(|a| Mutation::Alg(a.into())),
        prop::sample::select(vec![Algorithm::HS384, Algorithm::HS512])
            .prop_map(Mutation::AlgResigned),
        (
            prop::sample::select(vec!["kid", "typ", "alg", "jku", "x5u", "cty", "crit"]),
            prop_oneof![
                Just(json!("k-old")),
                Just(json!("k-evil")),
                Just(json!("")),
                Just(json!(null)),
                Just(json!(7)),
                Just(json!(["HS256"])),
            ]
        )
            .prop_map(|(k, v)| Mutation::HeaderField(k.into(), v)),
        (0..CLAIMS.len(), 0..CLAIMS.len()).prop_map(|(a, b)| Mutation::SwapClaims(a, b)),
        (0..CLAIMS.len(), claim_value).prop_map(|(c, v)| Mutation::SetClaim(c, v)),
        (0..CLAIMS.len()).prop_map(Mutation::DropClaim),
        Just(Mutation::Reorder),
        "[a-z0-9-]{32,40}".prop_map(Mutation::ForeignKey),
        Just(Mutation::WrongKid),
        (0..3usize, 0..3usize).prop_map(|(a, b)| Mutation::SwapSegments(a, b)),
        (0..3usize).prop_map(Mutation::Pad),
        (0..3usize).prop_map(Mutation::StandardAlphabet),
        "[A-Za-z0-9_-]{0,8}".prop_map(Mutation::ExtraSegment),
    ]
}

fn apply(token: &str, mutation: &Mutation) -> String {
    let mut parts = segments(token);
    let header = || -> Map<String, Value> { serde_json::from_slice(&unb64(&parts[0])).unwrap() };
    let claims = || -> Map<String, Value> { serde_json::from_slice(&unb64(&parts[1])).unwrap() };
    let with_claims = |claims: &Map<String, Value>| {
        format!(
            "{}.{}.{}",
            parts[0],
            b64(serde_json::to_string(claims).unwrap().as_bytes()),
            parts[2]
        )
    };
    let with_header = |header: &Map<String, Value>| {
        format!(
            "{}.{}.{}",
            b64(serde_json::to_string(header).unwrap().as_bytes()),
            parts[1],
            parts[2]
        )
    };
    // Char boundaries only: tokens are ASCII, appended text may not be.
    let at = |index: &Index| index.index(token.len());
    if token.is_empty() {
        // Cut to nothing already: only something appended can follow.
        return match mutation {
            Mutation::Append(text) | Mutation::Insert { text, .. } => text.clone(),
            _ => String::new(),
        };
    }
    match mutation {
        Mutation::FlipBit { segment, at, bit } => {
            let mut bytes = unb64(&parts[*segment]);
            if bytes.is_empty() {
                return token.to_owned();
            }
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            parts[*segment] = b64(&bytes);
            parts.join(".")
        }
        Mutation::Replace { at: i, with } => {
            let i = at(i);
            format!("{}{with}{}", &token[..i], &token[i + 1..])
        }
        Mutation::Truncate { at: i } => token[..at(i)].to_owned(),
        Mutation::Append(text) => format!("{token}{text}"),
        Mutation::Insert { at: i, text } => {
            let i = at(i);
            format!("{}{text}{}", &token[..i], &token[i..])
        }
        Mutation::Remove { at: i } => {
            let i = at(i);
            format!("{}{}", &token[..i], &token[i + 1..])
        }
        Mutation::FlipCase { at: i } => {
            let i = at(i);
            let c = token.as_bytes()[i] as char;
            let flipped = if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            };
            format!("{}{flipped}{}", &token[..i], &token[i + 1..])
        }
        Mutation::Alg(alg) => {
            let mut h = header();
            h.insert("alg".into(), json!(alg));
            let forged = with_header(&h);
            if alg.eq_ignore_ascii_case("none") {
                // `none` tokens come without a signature.
                let mut p = segments(&forged);
                p[2].clear();
                p.join(".")
            } else {
                forged
            }
        }
        Mutation::AlgResigned(alg) => {
            let mut h = Header::new(*alg);
            h.kid = Some(model::KEY_NEW.0.into());
            let message = format!(
                "{}.{}",
                b64(serde_json::to_string(&h).unwrap().as_bytes()),
                parts[1]
            );
            format!("{message}.{}", hmac(&message, *alg, model::KEY_NEW.1))
        }
        Mutation::HeaderField(key, value) => {
            let mut h = header();
            h.insert(key.clone(), value.clone());
            with_header(&h)
        }
        Mutation::SwapClaims(a, b) => {
            let mut c = claims();
            let (a, b) = (CLAIMS[*a], CLAIMS[*b]);
            let (va, vb) = (
                c.get(a).cloned().unwrap_or_default(),
                c.get(b).cloned().unwrap_or_default(),
            );
            c.insert(a.into(), vb);
            c.insert(b.into(), va);
            with_claims(&c)
        }
        Mutation::SetClaim(i, value) => {
            let mut c = claims();
            c.insert(CLAIMS[*i].into(), value.clone());
            with_claims(&c)
        }
        Mutation::DropClaim(i) => {
            let mut c = claims();
            c.remove(CLAIMS[*i]);
            with_claims(&c)
        }
        Mutation::Reorder => {
            let c = claims();
            let reversed: Vec<String> = c
                .iter()
                .rev()
                .map(|(k, v)| format!("{}:{}", json!(k), v))
                .collect();
            format!(
                "{}.{}.{}",
                parts[0],
                b64(format!("{{{}}}", reversed.join(",")).as_bytes()),
                parts[2]
            )
        }
        Mutation::ForeignKey(key) => {
            let message = format!("{}.{}", parts[0], parts[1]);
            format!("{message}.{}", hmac(&message, Algorithm::HS256, key))
        }
        Mutation::WrongKid => {
            // Signed with a listed key, but not the one the header's `kid`
            // names (an earlier mutation may have named the old key).
            let message = format!("{}.{}", parts[0], parts[1]);
            let other = if header().get("kid") == Some(&json!(model::KEY_OLD.0)) {
                model::KEY_NEW
            } else {
                model::KEY_OLD
            };
            format!("{message}.{}", hmac(&message, Algorithm::HS256, other.1))
        }
        Mutation::SwapSegments(a, b) => {
            parts.swap(*a, *b);
            parts.join(".")
        }
        Mutation::Pad(segment) => {
            parts[*segment].push('=');
            parts.join(".")
        }
        Mutation::StandardAlphabet(segment) => {
            let bytes = unb64(&parts[*segment]);
            parts[*segment] = STANDARD_NO_PAD.encode(bytes);
            parts.join(".")
        }
        Mutation::ExtraSegment(text) => format!("{token}.{text}"),
    }
}

fn verifies(token: &str) -> bool {
    state::verify(token, &*SECRETS).is_ok()
}

#[test]
fn the_genuine_tokens_verify() {
    let claims = state::verify(&GENUINE, &*SECRETS).unwrap();
    assert_eq!(claims, model::claims("jti-props"));
    // Signed with the old key: still verifies while the key is listed.
    assert!(verifies(&model::token("jti-old", model::KEY_OLD)));
}

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn mutated_tokens_never_verify(mutations in prop::collection::vec(mutation(), 1..4)) {
        let mut token = GENUINE.clone();
        for mutation in &mutations {
            // Later structural mutations need three decodable segments.
            let parts = segments(&token);
            let decodable = parts.len() == 3
                && parts.iter().all(|p| URL_SAFE_NO_PAD.decode(p).is_ok())
                && serde_json::from_slice::<Map<String, Value>>(&unb64(&parts[0])).is_ok()
                && serde_json::from_slice::<Map<String, Value>>(&unb64(&parts[1])).is_ok();
            let structural = !matches!(
                mutation,
                Mutation::Replace { .. } | Mutation::Truncate { .. } | Mutation::Append(_)
                    | Mutation::Insert { .. } | Mutation::Remove { .. } | Mutation::FlipCase { .. }
                    | Mutation::ExtraSegment(_)
            );
            if structural && !decodable {
                continue;
            }
            if !token.is_ascii() && !structural {
                continue;
            }
            token = apply(&token, mutation);
        }
        let verified = verifies(&token);
        prop_assert_eq!(verified, token == *GENUINE, "{:?} gave {}", mutations, token);
    }

    #[test]
    fn arbitrary_text_never_verifies(text in prop_oneof![
        "\\PC{0,300}",
        any::<String>(),
        "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,60}",
        (1usize..4000).prop_map(|n| "a".repeat(n)),
    ]) {
        prop_assert!(!verifies(&text));
    }


    /// Claims of every shape, correctly signed with our key: accepted exactly
    /// when each claim is present, of its type, right and in date.
    #[test]
    fn signed_claims_verify_only_when_valid(fields in prop::collection::vec(claim_choice(), 8)) {
        let now = now();
        let mut claims = Map::new();
        let mut valid = true;
        for (name, choice) in ["jti", "sub", "iss", "aud", "iat", "nbf", "exp", "extra"].iter().zip(&fields) {
            let (value, ok) = claim_value(name, *choice, now);
            valid &= ok;
            if let Some(value) = value {
                claims.insert((*name).into(), value);
            }
        }
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(model::KEY_NEW.0.into());
        let token = jsonwebtoken::encode(
            &header,
            &Value::Object(claims.clone()),
            &EncodingKey::from_secret(model::KEY_NEW.1.as_bytes()),
        ).unwrap();
        let result = state::verify(&token, &*SECRETS);
        prop_assert_eq!(result.is_ok(), valid, "{:?}: {:?}", claims, result);
    }
}

/// Which of a claim's candidate values to use (see `claim_value`).
fn claim_choice() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 1 => 1..8u8]
}

/// A value for the claim `name` (None: left out) and whether it is valid.
/// Times are far from the 5 s leeway, so the clock cannot flip an answer.
fn claim_value(name: &str, choice: u8, now: i64) -> (Option<Value>, bool) {
    let time = |offset: i64| Some(json!(now + offset));
    match (name, choice) {
        ("jti" | "sub", 0) => (Some(json!("abc")), true),
        ("jti" | "sub", 1) => (Some(json!("")), true),
        ("jti" | "sub", 2) => (None, false),
        ("jti" | "sub", 3) => (Some(json!(1)), false),
        ("jti" | "sub", 4) => (Some(json!(null)), false),
        ("jti" | "sub", _) => (Some(json!("x\u{0}y")), true),
        ("iss", 0) => (Some(json!(model::ISSUER)), true),
        ("aud", 0) => (Some(json!(model::AUDIENCE)), true),
        ("iss" | "aud", 1) => (None, false),
        ("iss" | "aud", 2) => (Some(json!("other")), false),
        ("iss", 3) => (Some(json!([model::ISSUER])), false),
        ("aud", 3) => (Some(json!([model::AUDIENCE])), false),
        ("iss", 4) => (Some(json!("Connect")), false),
        ("aud", 4) => (Some(json!("connect-callback ")), false),
        ("iss" | "aud", _) => (Some(json!(null)), false),
        ("iat", 0) => (time(-60), true),
        ("iat", 1) => (None, false),
        ("iat", 2) => (Some(json!("1700000000")), false),
        ("iat", 3) => (Some(json!(1.5e9)), false),
        ("iat", 4) => (Some(json!(0)), true),
        ("iat", _) => (time(86_400), true),
        ("nbf", 0) => (time(-60), true),
        ("nbf", 1) => (None, false),
        ("nbf", 2) => (time(600), false),
        ("nbf", 3) => (Some(json!(1.5e9)), false),
        ("nbf", 4) => (Some(json!(0)), true),
        ("nbf", 5) => (Some(json!(-1)), false),
        ("nbf", _) => (Some(json!(format!("{now}"))), false),
        ("exp", 0) => (time(900), true),
        ("exp", 1) => (None, false),
        ("exp", 2) => (time(-600), false),
        ("exp", 3) => (Some(json!(i64::MAX)), true),
        ("exp", 4) => (Some(json!(u64::MAX)), false),
        ("exp", 5) => (Some(json!(-1)), false),
        ("exp", _) => (Some(json!(4.1e9)), false),
        // A claim we do not issue (the old browser-binding hash among
        // them) is ignored, whatever its type.
        ("extra", 0 | 1) => (None, true),
        ("extra", 2) => (Some(json!(null)), true),
        ("extra", 3) => (Some(json!("hash")), true),
        ("extra", _) => (Some(json!(5)), true),
        _ => unreachable!("no claim {name}"),
    }
}

// ---------------------------------------------------------------- create-link body

fn link_field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "sandbox-barclays", "tmpl_1", "a.b-c_d", "", "a b", "../x", "é", "x/y", "a%20b",
            "bank\u{0}", FRONTENDS[0], FRONTENDS[1], "https://evil.example/return",
            "HTTPS://APP.EXAMPLE.COM/return", "https://app.example.com/return?x=1",
            "https://app.example.com:443/return", "javascript:alert(1)",
            // Challenges: a real one, one short, one long, one outside base64url.
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cMx", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
            "S256", "s256", "plain",
        ])
        .prop_map(Value::from),
        1 => "[A-Za-z0-9_-]{43}".prop_map(Value::from),
        1 => (1usize..200).prop_map(|n| Value::from("p".repeat(n))),
        2 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => arb_json(),
    ]
}

fn link_body_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        8 => prop::sample::select(vec![
            "provider", "template", "skip_info", "skip_qr", "return_to", "code_challenge",
            "code_challenge_method",
        ])
        .prop_map(String::from),
        1 => prop::sample::select(vec!["Provider", "returnTo", "customer", "user", ""])
            .prop_map(String::from),
    ];
    prop_oneof![
        6 => prop::collection::btree_map(key, link_field_value(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => arb_json(),
    ]
}

fn link_input() -> impl Strategy<Value = LinkInput> {
    let content_type = prop_oneof![
        6 => Just(Some(b"application/json".to_vec())),
        1 => Just(None),
        1 => prop::sample::select(vec![
            "application/json; charset=utf-8", "APPLICATION/JSON", "text/plain",
            "application/x-www-form-urlencoded", "", "application/jsonx", " application/json",
        ])
        .prop_map(|c| Some(c.as_bytes().to_vec())),
        1 => prop::collection::vec(any::<u8>(), 0..20).prop_map(Some),
    ];
    let body = prop_oneof![
        8 => link_body_value().prop_map(|v| v.to_string().into_bytes()),
        // Just under and over the limit: valid JSON padded with spaces.
        1 => (MAX_BODY_BYTES - 4..MAX_BODY_BYTES + 4).prop_map(|n| {
            let mut body = b"{}".to_vec();
            body.resize(n, b' ');
            body
        }),
        1 => (MAX_BODY_BYTES + 1..MAX_BODY_BYTES * 3).prop_map(|n| vec![b'{'; n]),
        2 => prop::collection::vec(any::<u8>(), 0..200),
        1 => prop::sample::select(vec![
            "", " ", "\n\t\r ", "\u{c}", "null", "[]", "{}", "{", "\u{feff}{}", "{\"provider\":\"a\",\"provider\":\"b\"}",
            "{\"skip_qr\":1}", "1e999", "\"x\"", "{\"return_to\":\"\\u0000\"}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ];
    (
        prop::bool::weighted(0.9),
        content_type,
        body,
        prop::bool::weighted(0.8),
    )
        .prop_map(|(user, content_type, body, as_text)| LinkInput {
            user,
            content_type,
            body,
            as_text,
        })
}

/// Any body: never a panic or a 5xx but the 503 of a dead Finexer (which
/// means the body was accepted); exactly the model's answer; errors are
/// problem documents.
#[test]
fn create_link_answers_only_allowed_statuses() {
    let rt = runtime();
    let app = model::app(model::DEAD_FINEXER);
    let seen: RefCell<BTreeMap<u16, usize>> = RefCell::default();
    check(cases(600), link_input(), |input| {
        let response = rt.block_on(shared::handlers::create_link(
            &app,
            model::create_link_request(&input),
        ));
        let status = response.status().as_u16();
        *seen.borrow_mut().entry(status).or_default() += 1;
        prop_assert!(
            model::CREATE_LINK_STATUSES.contains(&status),
            "status {} for {:?}",
            status,
            input
        );
        prop_assert!(
            model::expected_create_link(&input).contains(&status),
            "{:?}: {}",
            input,
            body_text(&response)
        );
        if status >= 400 {
            prop_assert_eq!(
                response.headers()["content-type"].to_str().unwrap(),
                "application/problem+json"
            );
            let problem: Value = serde_json::from_str(&body_text(&response)).unwrap();
            prop_assert_eq!(problem["status"].as_u64(), Some(u64::from(status)));
        }
        Ok(())
    });
    let seen = seen.into_inner();
    println!("create-link statuses: {seen:?}");
    for status in [400, 401, 413, 503] {
        assert!(
            seen.contains_key(&status),
            "{status} never reached: {seen:?}"
        );
    }
}

// ---------------------------------------------------------------- Finexer parsing

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn consent_parsing_matches_the_model(value in prop_oneof![consent_value(), arb_json()]) {
        model::check_consent(&value).map_err(TestCaseError::fail)?;
        // The client parses bytes: same answer as from the value (which has
        // no duplicate keys and only finite numbers).
        let from_text = serde_json::from_str::<Consent>(&value.to_string());
        prop_assert_eq!(from_text.is_ok(), model::consent_should_parse(&value));
    }

    #[test]
    fn consent_parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = serde_json::from_slice::<Consent>(&bytes);
        let _ = serde_json::from_slice::<shared::finexer::Customer>(&bytes);
    }

    #[test]
    fn statuses_map_and_round_trip(raw in status_string()) {
        let status = ConsentStatus::from(raw.clone());
        model::check_status(&raw, &status).map_err(TestCaseError::fail)?;
        let from_json: ConsentStatus = serde_json::from_value(json!(raw)).unwrap();
        prop_assert_eq!(&from_json, &status);
        prop_assert_eq!(serde_json::to_value(&status).unwrap(), json!(status.as_str()));
    }

}

#[test]
fn known_statuses_map_to_their_variants() {
    for (raw, status) in model::known_statuses() {
        assert_eq!(ConsentStatus::from(raw.to_owned()), status, "{raw}");
        model::check_status(raw, &status).unwrap();
    }
    let other = ConsentStatus::from("Authorized".to_owned());
    assert_eq!(other, ConsentStatus::Other("Authorized".into()));
    assert!(!other.is_outcome());
}

// ---------------------------------------------------------------- return targets

fn url_like() -> impl Strategy<Value = String> {
    let edited = (
        prop::sample::select(FRONTENDS.to_vec()),
        any::<Index>(),
        "[ -~]{0,3}",
        prop::sample::select(vec![0u8, 1, 4]),
    )
        .prop_map(|(url, at, text, how)| edit(url, at.index(url.len()), &text, how));
    prop_oneof![
        4 => edited,
        2 => prop::sample::select(vec![
            "https://app.example.com/return", "HTTPS://APP.EXAMPLE.COM/return",
            "https://app.example.com:443/return", "https://app.example.com/./return",
            "https://app.example.com/x/../return", "https:\\\\app.example.com\\return",
            "https://app.example.com./return", "https://app.example.com/%72eturn",
            "https://app.example.com/return/", "https://app.example.com/return?",
            "https://app.example.com/return#", "https://app.example.com/Return",
            "https://user@app.example.com/return", "https://app.example.com@evil.example/return",
            "//app.example.com/return", "https:app.example.com/return",
            "http://127.0.0.1:3000/connected", "http://0x7f.0.0.1:3000/connected",
            "http://2130706433:3000/connected", "http://127.1:3000/connected",
            "http://[::ffff:127.0.0.1]:3000/connected", "http://localhost:3000/connected",
            "http://127.0.0.1:03000/connected", "http://127.0.0.1:3000/connected\t",
            " https://app.example.com/return", "https://app.example.com/return ",
            "https://xn--pp-8ka.example.com/return", "https://аpp.example.com/return",
        ])
        .prop_map(String::from),
        2 => "\\PC{0,60}",
        1 => any::<String>(),
        1 => (2000usize..2100).prop_map(|n| format!("https://app.example.com/return?{}", "a".repeat(n))),
    ]
}

proptest! {
    #![proptest_config(cases(1000))]

    /// Accepted exactly when the text parses to an allow-listed URL (within
    /// the length limit and without control characters), and the target is
    /// always the allow-listed URL itself, never the caller's spelling.
    #[test]
    fn return_targets_are_allow_listed(raw in url_like()) {
        let allowed = allowed();
        let parsed = Url::parse(&raw).ok();
        let should = raw.len() <= 2048
            && !raw.chars().any(char::is_control)
            && parsed.as_ref().is_some_and(|u| allowed.contains(u));
        match ReturnTarget::parse(&raw, &allowed) {
            Ok(target) => {
                prop_assert!(should, "{:?} accepted", raw);
                prop_assert!(FRONTENDS.contains(&target.as_str()), "{:?} -> {}", raw, target.as_str());
                prop_assert_eq!(parsed.as_ref(), Some(&Url::parse(target.as_str()).unwrap()));
            }
            Err(e) => {
                prop_assert!(!should, "{:?} refused", raw);
                prop_assert_eq!(e.status(), 400);
            }
        }
    }


}

/// Finding (reported with issue 5): `AppSecrets::parse` passes serde_json's
/// message on, and serde quotes a string found where another type was
/// expected, so a secret of the wrong shape (a key list of bare strings, say)
/// puts key material into the error, which the handlers log at error level.
/// Parse errors must not quote the secret's strings (they are logged).
#[test]
fn secret_errors_never_quote_key_material() {
    const KEY: &str = "KEYMATERIAL-KEYMATERIAL-KEYMATERIAL";
    const API: &str = "sk_live_APIKEY";
    for json in [
        format!(r#"{{"finexer_api_key":"{API}","state_keys":["{KEY}"]}}"#),
        format!(r#"{{"finexer_api_key":"{API}","state_keys":"{KEY}"}}"#),
        format!(r#"{{"finexer_api_key":"{API}","state_keys":{{"kid":"a","key":"{KEY}"}}}}"#),
        format!(r#"{{"finexer_api_key":["{API}"],"state_keys":[]}}"#),
        format!(r#"["{API}","{KEY}"]"#),
        format!(r#""{KEY}""#),
    ] {
        let error = AppSecrets::parse(&json).err().expect("refused").to_string();
        assert!(
            !error.contains(KEY) && !error.contains(API),
            "the error quotes a secret: {error}"
        );
    }
}

// Cheaper generators or simpler properties: fewer cases.
proptest! {
    #![proptest_config(cases(384))]

    #[test]
    fn arbitrary_segments_never_verify(
        header in prop_oneof![arb_json().prop_map(|v| v.to_string()), "\\PC{0,40}"],
        payload in prop_oneof![arb_json().prop_map(|v| v.to_string()), "\\PC{0,40}"],
        signature in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let token = format!("{}.{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()), b64(&signature));
        prop_assert!(!verifies(&token));
    }

    #[test]
    fn non_string_statuses_are_refused(value in arb_json().prop_filter("not a string", |v| !v.is_string())) {
        prop_assert!(serde_json::from_value::<ConsentStatus>(value).is_err());
    }

    /// The other URL helpers: no panic on any path or query; a path's route
    /// gets all its parameters; query names are never repeated in an
    /// accepted query.
    #[test]
    fn path_and_query_helpers_never_panic(
        path in "/[A-Za-z0-9%/._~!$&'()*+,;=:@-]{0,80}",
        query in "[ -~]{0,120}".prop_map(|s| model::escape_invalid_query_bytes(s.as_bytes())),
    ) {
        let uri = format!("https://api.example.com{path}?{query}");
        prop_assume!(uri.parse::<lambda_http::http::Uri>().is_ok());
        let request = lambda_http::http::Request::builder()
            .uri(uri)
            .body(Body::Empty)
            .unwrap();
        for method in ["GET", "POST"] {
            if let Some((route, parameters)) = shared::routes::Route::find(method, request.uri().path()) {
                prop_assert_eq!(route.method(), method);
                prop_assert_eq!(parameters.len(), route.parameters().count());
            }
        }
        if let Ok(params) = shared::http::query_params(&request) {
            let mut names: Vec<&String> = params.iter().map(|(k, _)| k).collect();
            let count = names.len();
            names.sort();
            names.dedup();
            prop_assert_eq!(names.len(), count);
        }
    }

    /// The secret's JSON: never a panic; accepted only when it is safe to
    /// sign with, and no error repeats a key.
    #[test]
    fn secrets_are_validated(
        api_key in prop::sample::select(vec!["sk_test", "", "  ", "k"]),
        keys in prop::collection::vec(
            (prop::sample::select(vec!["k1", "k2", "", "k-very-long-kid-k-very-long-kid-k-very-long-kid-k-very-long-kid-x"]),
             "[a-z0-9]{0,40}"),
            0..4,
        ),
        garbage in prop::option::of(arb_json()),
    ) {
        let json = match &garbage {
            Some(value) => value.to_string(),
            None => model::secrets_json(
                &keys.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
            )
            .replace("sk_test_props", api_key),
        };
        match AppSecrets::parse(&json) {
            Ok(secrets) => {
                prop_assert!(!secrets.state_keys.keys.is_empty());
                for (i, key) in secrets.state_keys.keys.iter().enumerate() {
                    prop_assert!(!key.kid.is_empty() && key.kid.len() <= 64);
                    prop_assert!(secrecy::ExposeSecret::expose_secret(&key.key).len() >= 32);
                    prop_assert!(secrets.state_keys.keys[..i].iter().all(|k| k.kid != key.kid));
                }
            }
            Err(e) => {
                let text = e.to_string();
                for (_, key) in &keys {
                    prop_assert!(key.len() < 8 || !text.contains(key.as_str()), "{} leaks a key", text);
                }
            }
        }
    }
}
