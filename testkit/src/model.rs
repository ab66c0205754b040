//! What the handlers may answer to a given input: the oracle shared by the
//! property tests (`shared/tests/properties.rs`) and the cargo-fuzz targets
//! (`fuzz/`).
//!
//! The fixture is an [`App`] over a [`MemoryStore`], fixed secrets and a
//! Finexer nobody listens on (`127.0.0.1:9`), so every input that gets as far
//! as Finexer ends in a fast 503. Its state tokens are signed over fixed
//! claims that expire in 2096, so they are the same in every run and a saved
//! corpus or regression case stays meaningful.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::http::HeaderValue;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shared::App;
use shared::config::Config;
use shared::consent::ConsentStatus;
use shared::finexer::Consent;
use shared::handlers::CreateLink;
use shared::http::{MAX_BODY_BYTES, ReturnTarget};
use shared::secrets::{AppSecrets, StaticSecrets};
use shared::state::{self, StateClaims};
use shared::store::memory::MemoryStore;
use shared::store::{ConsentRecord, StateRecord};

use crate::event::Event;
use crate::records::{self, Seed};

pub const FRONTENDS: [&str; 2] = [
    "http://127.0.0.1:3000/connected",
    "https://app.example.com/return",
];
pub const CALLBACK_URL: &str = "https://api.example.com/callback";
/// The discard port: nothing listens, so a Finexer call fails at once.
pub const DEAD_FINEXER: &str = "http://127.0.0.1:9";
pub const KEY_NEW: (&str, &str) = ("k-new", "new-signing-key-new-signing-key-0001");
pub const KEY_OLD: (&str, &str) = ("k-old", "old-signing-key-old-signing-key-0001");
pub const USER: &str = "prop-user";
pub const ISSUER: &str = "connect";
pub const AUDIENCE: &str = "connect-callback";
/// The fixture's tokens: issued in 2023, valid until 2096.
pub const ISSUED: i64 = 1_700_000_000;
pub const EXPIRES: i64 = 4_000_000_000;
const QUERY_LIMIT: usize = 4096;
/// The browser-binding cookie of the bound consent, and the cookie's name.
pub const BINDING: &str = "binding-cookie-value-0001";
pub const BINDING_COOKIE: &str = "__Host-fx_bind";

/// The status names Finexer (and we) use, and what each must parse to.
pub fn known_statuses() -> [(&'static str, ConsentStatus); 8] {
    [
        ("new", ConsentStatus::New),
        ("pending", ConsentStatus::Pending),
        ("authorized", ConsentStatus::Authorized),
        ("failed", ConsentStatus::Failed),
        ("expired", ConsentStatus::Expired),
        ("canceled", ConsentStatus::Canceled),
        ("cancelled", ConsentStatus::Canceled),
        ("revoke_pending", ConsentStatus::RevokePending),
    ]
}

pub fn secrets_json(keys: &[(&str, &str)]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, key)| json!({"kid": kid, "key": key}))
        .collect();
    json!({"finexer_api_key": "sk_test_props", "state_keys": keys}).to_string()
}

pub fn app_secrets(keys: &[(&str, &str)]) -> AppSecrets {
    AppSecrets::parse(&secrets_json(keys)).expect("fixture secrets are valid")
}

/// The app's secrets: the new key signs, the old one still verifies.
pub fn secrets() -> AppSecrets {
    app_secrets(&[KEY_NEW, KEY_OLD])
}

pub fn config(finexer_base: &str) -> Config {
    let frontends = FRONTENDS.join(",");
    let vars: HashMap<&str, &str> = HashMap::from([
        ("CONSENT_TABLE", "unused"),
        ("CALLBACK_URL", CALLBACK_URL),
        ("FRONTEND_URLS", frontends.as_str()),
        ("FINEXER_BASE_URL", finexer_base),
        ("FINEXER_TIMEOUT_MS", "2000"),
    ]);
    Config::from_lookup(|name| vars.get(name).map(|v| v.to_string())).expect("fixture config")
}

/// An app over a fresh in-memory store, retrying Finexer without waiting.
pub fn app(finexer_base: &str) -> App {
    let mut app = App::new(
        config(finexer_base),
        Arc::new(MemoryStore::new()),
        Arc::new(StaticSecrets(Arc::new(secrets()))),
    )
    .expect("fixture app");
    app.finexer = app.finexer.clone().with_backoff(Duration::ZERO);
    app
}

pub fn claims(jti: &str) -> StateClaims {
    bound_claims(jti, None)
}

/// What the state carries for a binding cookie value: its SHA-256, base64url.
pub fn binding_hash(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

pub fn bound_claims(jti: &str, _binding: Option<&str>) -> StateClaims {
    StateClaims {
        jti: jti.to_owned(),
        sub: USER.to_owned(),
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        iat: ISSUED,
        nbf: ISSUED,
        exp: EXPIRES,
    }
}

/// A deterministic token: HS256 over fixed claims is the same every time.
pub fn token(jti: &str, key: (&str, &str)) -> String {
    bound_token(jti, key, None)
}

pub fn bound_token(jti: &str, key: (&str, &str), binding: Option<&str>) -> String {
    state::sign(&bound_claims(jti, binding), &app_secrets(&[key])).expect("signing")
}

/// The seeded consents' kinds: what a genuine callback for each gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeded {
    /// Still pending: the callback asks Finexer (which is down: 503).
    Pending,
    /// Already authorized: a genuine reload is redirected again.
    Done,
    /// Canceled and revoked since: refused even with its genuine state.
    Revoked,
}

pub struct SeededConsent {
    pub id: &'static str,
    pub kind: Seeded,
    pub token: String,
    /// The browser-binding cookie value its state is bound to.
    pub binding: Option<&'static str>,
    pub record: ConsentRecord,
}

pub fn record(
    id: &str,
    jti: &str,
    status: ConsentStatus,
    return_to: &str,
    revoked: bool,
) -> ConsentRecord {
    let at = records::at("2026-11-25T10:00:00Z");
    let mut record = records::consent(Seed {
        consent_id: id,
        owner: USER,
        customer_id: "cus_props",
        state_id: jti,
        return_to,
        status,
        at,
    });
    record.milestones.revoke_requested_at = revoked.then_some(at);
    record.milestones.revoked_at = revoked.then_some(at);
    record
}

pub fn state_record(id: &str, jti: &str) -> StateRecord {
    StateRecord {
        state_id: jti.to_owned(),
        consent_id: id.to_owned(),
        owner: USER.to_owned(),
        expires_at: EXPIRES,
    }
}

/// What the callback must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 400, an HTML page, no redirect.
    Refused,
    /// 503 with Retry-After: the request got as far as Finexer.
    Unavailable,
    /// 303 to the consent's recorded frontend with its outcome.
    Redirect,
    /// 200, the one page every stateless return gets, whatever the consent.
    Unfinished,
}

pub struct Fixture {
    pub app: App,
    pub consents: Vec<SeededConsent>,
}

impl Fixture {
    /// The app with four consents: pending (state signed with the new key),
    /// done (signed with the old key, still accepted), revoked, and pending
    /// with a state bound to a browser cookie.
    pub async fn new(finexer_base: &str) -> Fixture {
        let app = app(finexer_base);
        let specs = [
            (
                "bc_pending",
                Seeded::Pending,
                ConsentStatus::Pending,
                KEY_NEW,
                FRONTENDS[0],
                None,
            ),
            (
                "bc_done",
                Seeded::Done,
                ConsentStatus::Authorized,
                KEY_OLD,
                FRONTENDS[1],
                None,
            ),
            (
                "bc_revoked",
                Seeded::Revoked,
                ConsentStatus::Canceled,
                KEY_NEW,
                FRONTENDS[0],
                None,
            ),
            (
                "bc_bound",
                Seeded::Pending,
                ConsentStatus::Pending,
                KEY_NEW,
                FRONTENDS[1],
                Some(BINDING),
            ),
        ];
        let mut consents = Vec::new();
        for (id, kind, status, key, return_to, binding) in specs {
            let jti = format!("jti-{id}");
            let record = record(id, &jti, status, return_to, kind == Seeded::Revoked);
            app.store
                .insert_consent(&record, &state_record(id, &jti))
                .await
                .expect("seeding");
            consents.push(SeededConsent {
                id,
                kind,
                token: bound_token(&jti, key, binding),
                binding,
                record,
            });
        }
        Fixture { app, consents }
    }

    pub fn consent(&self, id: &str) -> Option<&SeededConsent> {
        self.consents.iter().find(|c| c.id == id)
    }

    pub fn tokens(&self) -> Vec<&str> {
        self.consents.iter().map(|c| c.token.as_str()).collect()
    }

    /// What `callback` must answer to this raw query string (as the request
    /// URI carries it) and `Cookie` header.
    pub fn expected_callback(&self, query: &str, cookie: Option<&str>) -> Outcome {
        if query.len() > QUERY_LIMIT {
            return Outcome::Refused;
        }
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let mut names = HashSet::new();
        if !pairs.iter().all(|(name, _)| names.insert(name)) {
            return Outcome::Refused;
        }
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        // Cookies play no part: the owner's confirmation binds the consent.
        let _ = cookie;
        let Some(id) = get("fx_consent").filter(|id| valid_id(id)) else {
            return Outcome::Refused;
        };
        // Without a state, every id (known or not) gets the same page.
        let Some(state) = get("state") else {
            return Outcome::Unfinished;
        };
        // An unknown id finds no record; only the exact token issued with
        // this consent is genuine.
        let Some(consent) = self.consent(id).filter(|c| c.token == state) else {
            return Outcome::Refused;
        };
        match consent.kind {
            Seeded::Pending => Outcome::Unavailable,
            Seeded::Done => Outcome::Redirect,
            Seeded::Revoked => Outcome::Refused,
        }
    }

    /// Checks a callback response against the expected outcome, and that no
    /// record changed.
    pub async fn check_callback(
        &self,
        query: &str,
        cookie: Option<&str>,
        response: &Response<Body>,
    ) -> Result<Outcome, String> {
        let expected = self.expected_callback(query, cookie);
        let status = response.status().as_u16();
        let headers = response.headers();
        let location = headers.get("location");
        match expected {
            Outcome::Refused | Outcome::Unavailable => {
                let want = if expected == Outcome::Refused {
                    400
                } else {
                    503
                };
                if status != want {
                    return Err(format!("{query:?}: expected {want}, got {status}"));
                }
                if location.is_some() {
                    return Err(format!("{query:?}: an error page redirects"));
                }
                let html = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/html"));
                if !html {
                    return Err(format!("{query:?}: the error page is not HTML"));
                }
                if want == 503 && headers.get("retry-after").is_none() {
                    return Err(format!("{query:?}: 503 without Retry-After"));
                }
                // Whatever of the query the page repeats is escaped: it has
                // exactly the template's tags.
                let home = self.app.config.default_frontend();
                let template = shared::http::error_page("t", "d", home);
                let page = match response.body() {
                    Body::Text(text) => text.as_str(),
                    _ => "",
                };
                if page.matches('<').count() != template.matches('<').count() {
                    return Err(format!("{query:?}: the error page has tags of its own"));
                }
            }
            Outcome::Redirect => {
                if status != 303 {
                    return Err(format!("{query:?}: expected 303, got {status}"));
                }
                let location = location
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| url::Url::parse(v).ok())
                    .ok_or_else(|| format!("{query:?}: 303 without a valid location"))?;
                let consent = self.consents.iter().find(|c| c.kind == Seeded::Done);
                let consent = consent.expect("a done consent is seeded");
                let mut bare = location.clone();
                bare.set_query(None);
                if bare.as_str() != consent.record.return_to {
                    return Err(format!("{query:?}: redirected to {location}"));
                }
                let pairs: HashMap<String, String> = location.query_pairs().into_owned().collect();
                if pairs.get("consent_id").map(String::as_str) != Some(consent.id)
                    || pairs.get("status").map(String::as_str) != Some("authorized")
                {
                    return Err(format!("{query:?}: redirect says {location}"));
                }
                if headers.get("set-cookie").is_some() {
                    return Err(format!("{query:?} {cookie:?}: the callback set a cookie"));
                }
            }
            Outcome::Unfinished => {
                let home = self.app.config.default_frontend();
                let page = shared::http::unfinished_page(home);
                let same = status == 200
                    && location.is_none()
                    && matches!(response.body(), Body::Text(text) if *text == page);
                if !same {
                    return Err(format!("{query:?}: not the one stateless page ({status})"));
                }
            }
        }
        for consent in &self.consents {
            let now = self
                .app
                .store
                .consent(consent.id)
                .await
                .map_err(|e| e.to_string())?;
            if now.as_ref() != Some(&consent.record) {
                return Err(format!("{query:?}: consent {} changed", consent.id));
            }
        }
        Ok(expected)
    }
}

/// Whether API Gateway could hand us this query at all: `lambda_http` panics
/// while building the request when the URI is invalid (see the report), so
/// such queries never reach a handler.
pub fn query_is_valid(query: &str) -> bool {
    format!("https://api.example.com/callback?{query}")
        .parse::<lambda_http::http::Uri>()
        .is_ok()
}

/// `GET /callback?query`, or None when no valid request has that query.
pub fn callback_request(query: &str) -> Option<Request> {
    callback_request_with_cookie(query, None)
}

/// The same with a `Cookie` header (left off if it is not a valid value).
pub fn callback_request_with_cookie(query: &str, cookie: Option<&str>) -> Option<Request> {
    if !query_is_valid(query) {
        return None;
    }
    let mut request = Event::get("/callback").query(query).request();
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        request.headers_mut().insert("cookie", value);
    }
    Some(request)
}

/// The binding cookie's value in a `Cookie` header, as browsers send it
/// (`name=value` pairs separated by `;`).
pub fn binding_cookie(header: Option<&str>) -> Option<&str> {
    header
        .filter(|h| HeaderValue::from_str(h).is_ok())?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == BINDING_COOKIE)
        .map(|(_, value)| value)
}

/// Valid for a request URI: ASCII that may not stand in a query is escaped,
/// other characters are kept (the URI takes UTF-8).
pub fn escape_query(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii() {
                escape_invalid_query_bytes(&[c as u8])
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Percent-encodes what cannot stand in a request URI's query (and nothing
/// else), so any bytes become a query the gateway could pass on.
pub fn escape_invalid_query_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        let plain = matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How a create-link request arrives.
#[derive(Debug, Clone)]
pub struct LinkInput {
    /// Whether the JWT authorizer passed a caller.
    pub user: bool,
    pub content_type: Option<Vec<u8>>,
    pub body: Vec<u8>,
    /// A text body (as API Gateway passes non-base64 bodies) when UTF-8.
    pub as_text: bool,
}

pub fn create_link_request(input: &LinkInput) -> Request {
    let event = Event::post("/links");
    let event = if input.user { event.user(USER) } else { event };
    let mut request = event.request();
    if let Some(kind) = input
        .content_type
        .as_deref()
        .and_then(|v| HeaderValue::from_bytes(v).ok())
    {
        request.headers_mut().insert("content-type", kind);
    }
    *request.body_mut() = match (input.body.is_empty(), input.as_text) {
        (true, false) => Body::Empty,
        (_, true) => match String::from_utf8(input.body.clone()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        },
        (false, false) => Body::Binary(input.body.clone()),
    };
    request
}

/// Ids Finexer gets from us: printable ASCII without separators, 1 to 128.
pub fn plain_id(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The only statuses `create_link` may answer with a dead Finexer.
pub const CREATE_LINK_STATUSES: [u16; 5] = [201, 400, 401, 413, 503];

/// What `create_link` may answer (503: the input was accepted and Finexer,
/// which is down, was asked to create the customer). One status, but for a
/// body with a repeated key: refused (400) or read with its last value (503).
pub fn expected_create_link(input: &LinkInput) -> &'static [u16] {
    let expected = expected_create_link_strict(input);
    let repeated_key = expected == 503
        && !input.body.iter().all(u8::is_ascii_whitespace)
        && std::str::from_utf8(&input.body)
            .is_ok_and(|text| serde_json::from_str::<CreateLink>(text).is_err());
    match expected {
        _ if repeated_key => &[400, 503],
        401 => &[401],
        413 => &[413],
        503 => &[503],
        _ => &[400],
    }
}

fn expected_create_link_strict(input: &LinkInput) -> u16 {
    if !input.user {
        return 401;
    }
    if input.body.len() > MAX_BODY_BYTES {
        return 413;
    }
    if input.body.iter().all(u8::is_ascii_whitespace) {
        return 503;
    }
    // The header as it reaches the handler (an invalid value is not sent).
    let header = input
        .content_type
        .as_deref()
        .and_then(|v| HeaderValue::from_bytes(v).ok());
    if let Some(kind) = header {
        let kind = kind.to_str().unwrap_or_default().to_ascii_lowercase();
        if kind.split(';').next().unwrap_or_default().trim() != "application/json" {
            return 400;
        }
    }
    let Ok(text) = std::str::from_utf8(&input.body) else {
        return 400;
    };
    // A JSON object only: serde would also read a struct from an array.
    let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(text) else {
        return 400;
    };
    let Ok(link) = serde_json::from_value::<CreateLink>(value) else {
        return 400;
    };
    if expected_link_fields(&link) {
        503
    } else {
        400
    }
}

/// Whether a parsed body's fields are acceptable.
pub fn expected_link_fields(link: &CreateLink) -> bool {
    let allowed: Vec<url::Url> = FRONTENDS
        .iter()
        .map(|u| url::Url::parse(u).expect("fixture URL"))
        .collect();
    let challenge = |c: &str| {
        c.len() == 43
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    link.provider.as_deref().is_none_or(plain_id)
        && link.template.as_deref().is_none_or(plain_id)
        && link.code_challenge.as_deref().is_none_or(challenge)
        && link
            .code_challenge_method
            .as_deref()
            .is_none_or(|m| m == "S256" && link.code_challenge.is_some())
        && link
            .return_to
            .as_deref()
            .is_none_or(|r| ReturnTarget::parse(r, &allowed).is_ok())
}

/// Whether this JSON value must deserialise into a `Consent`. serde also
/// takes a struct as a sequence of its fields in order, so arrays count.
pub fn consent_should_parse(value: &Value) -> bool {
    fn optional_string(v: Option<&Value>) -> bool {
        matches!(v, None | Some(Value::Null) | Some(Value::String(_)))
    }
    fn redirect(v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => true,
            Some(Value::Object(m)) => {
                optional_string(m.get("return_url")) && optional_string(m.get("consent_url"))
            }
            Some(Value::Array(a)) => a.len() <= 2 && a.iter().all(|e| optional_string(Some(e))),
            Some(_) => false,
        }
    }
    let is_string = |v: Option<&Value>| matches!(v, Some(Value::String(_)));
    match value {
        Value::Object(m) => {
            is_string(m.get("id"))
                && is_string(m.get("status"))
                && ["provider", "customer", "authed_at", "expiry_date"]
                    .iter()
                    .all(|k| optional_string(m.get(*k)))
                && redirect(m.get("redirect"))
        }
        // Fields in declaration order; the ones with defaults may be left off.
        Value::Array(a) => {
            (2..=7).contains(&a.len())
                && is_string(a.first())
                && is_string(a.get(1))
                && a.iter().skip(2).take(4).all(|e| optional_string(Some(e)))
                && (a.len() < 7 || redirect(a.get(6)))
        }
        _ => false,
    }
}

/// The status a Finexer status string must become.
pub fn expected_status(raw: &str) -> ConsentStatus {
    known_statuses()
        .into_iter()
        .find(|(name, _)| *name == raw)
        .map(|(_, status)| status)
        .unwrap_or_else(|| ConsentStatus::Other(raw.to_owned()))
}

/// Checks `serde_json::from_value::<Consent>` against the model.
pub fn check_consent(value: &Value) -> Result<(), String> {
    let parsed = serde_json::from_value::<Consent>(value.clone());
    let should = consent_should_parse(value);
    match (&parsed, should) {
        (Ok(consent), true) => {
            let (id, status) = match value {
                Value::Object(m) => (&m["id"], &m["status"]),
                Value::Array(a) => (&a[0], &a[1]),
                _ => unreachable!("only objects and arrays parse"),
            };
            if Some(consent.id.as_str()) != id.as_str() {
                return Err(format!("{value}: id became {:?}", consent.id));
            }
            let raw = status.as_str().expect("a string status");
            check_status(raw, &consent.status)
        }
        (Err(_), false) => Ok(()),
        (Ok(consent), false) => Err(format!("{value} accepted as {consent:?}")),
        (Err(e), true) => Err(format!("{value} refused: {e}")),
    }
}

/// A parsed status: known names map to their variant, anything else is kept
/// verbatim as `Other`, and the name round-trips through serde.
pub fn check_status(raw: &str, status: &ConsentStatus) -> Result<(), String> {
    let expected = expected_status(raw);
    if *status != expected {
        return Err(format!("{raw:?} parsed as {status:?}, not {expected:?}"));
    }
    if let ConsentStatus::Other(kept) = status
        && (kept != raw || status.as_str() != raw)
    {
        return Err(format!("{raw:?} kept as {kept:?}"));
    }
    let text = serde_json::to_string(status).map_err(|e| e.to_string())?;
    let again: ConsentStatus = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if again != *status || again.as_str() != status.as_str() {
        return Err(format!("{raw:?} does not round-trip: {text} -> {again:?}"));
    }
    Ok(())
}

/// The callback's id check: short, printable, no separators.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
