//! What the check saw: every answer, kept as it came (to check its JSON
//! against the table) and, with `--record DIR`, saved with personal data and
//! secrets redacted. A saved recording can be answered back to the check
//! (`--replay DIR`), so its answers go through the same client and tables.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::finexer::{MAX_ANSWER_BYTES, Transport};
use url::Url;

/// One answer, as the client received it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub step: u8,
    pub method: String,
    /// The Finexer route, without the base URL's path or the query.
    pub path: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Exchange {
    fn to_response(&self) -> reqwest::Response {
        let mut builder = http::Response::builder().status(self.status);
        if let Some(content_type) = &self.content_type {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
        }
        if let Some(retry_after) = &self.retry_after {
            builder = builder.header(http::header::RETRY_AFTER, retry_after);
        }
        let response = builder
            .body(reqwest::Body::from(self.body.clone()))
            .unwrap_or_else(|_| {
                http::Response::builder()
                    .status(599)
                    .body(reqwest::Body::from("the recorded answer cannot be rebuilt"))
                    .expect("a plain response builds")
            });
        reqwest::Response::from(response)
    }

    /// Its JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Where answers come from.
pub enum Upstream {
    /// Finexer, over the network (no redirects followed).
    Network(reqwest::Client),
    /// A recording, answered in order.
    Replay(Mutex<VecDeque<Exchange>>),
}

/// The client's transport: sends through `upstream` and keeps every answer.
pub struct Tap {
    upstream: Upstream,
    base_path: String,
    step: AtomicU8,
    log: Mutex<Vec<Exchange>>,
}

impl Tap {
    pub fn new(upstream: Upstream, base: &Url) -> Self {
        Self {
            upstream,
            base_path: base.path().trim_end_matches('/').to_owned(),
            step: AtomicU8::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Answers from now on belong to `step`.
    pub fn set_step(&self, step: u8) {
        self.step.store(step, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn since(&self, start: usize) -> Vec<Exchange> {
        self.lock()[start..].to_vec()
    }

    pub fn all(&self) -> Vec<Exchange> {
        self.lock().clone()
    }

    /// Recorded answers no request asked for (replay only).
    pub fn unused(&self) -> Vec<Exchange> {
        match &self.upstream {
            Upstream::Replay(queue) => queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
            Upstream::Network(_) => Vec::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Exchange>> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl Transport for Tap {
    async fn send(&self, request: reqwest::Request) -> reqwest::Result<reqwest::Response> {
        let method = request.method().to_string();
        let full = request.url().path();
        let path = full
            .strip_prefix(self.base_path.as_str())
            .unwrap_or(full)
            .to_owned();
        let step = self.step.load(Ordering::Relaxed);
        let exchange = match &self.upstream {
            Upstream::Network(client) => {
                let mut response = client.execute(request).await?;
                let header = |name| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v: &http::HeaderValue| v.to_str().ok())
                        .map(str::to_owned)
                };
                let content_type = header(http::header::CONTENT_TYPE);
                let retry_after = header(http::header::RETRY_AFTER);
                let status = response.status().as_u16();
                // One byte over the client's cap is enough for it to refuse the answer.
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await? {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_ANSWER_BYTES {
                        body.truncate(MAX_ANSWER_BYTES + 1);
                        break;
                    }
                }
                Exchange {
                    step,
                    method,
                    path,
                    status,
                    content_type,
                    retry_after,
                    body,
                }
            }
            Upstream::Replay(queue) => {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                match next {
                    Some(recorded) if recorded.method == method && recorded.path == path => {
                        Exchange { step, ..recorded }
                    }
                    other => {
                        let recorded = other.map_or_else(
                            || "nothing more".to_owned(),
                            |r| format!("{} {}", r.method, r.path),
                        );
                        let body = json!({"error": {"type": "replay", "code": "replay_mismatch",
                            "message": format!("the recording has {recorded} here, not {method} {path}")}});
                        Exchange {
                            step,
                            method,
                            path,
                            // Not a status Finexer sends: the step shows it as such.
                            status: 599,
                            content_type: Some("application/json".into()),
                            retry_after: None,
                            body: body.to_string().into_bytes(),
                        }
                    }
                }
            }
        };
        let response = exchange.to_response();
        self.lock().push(exchange);
        Ok(response)
    }
}

/// The recording's index: how it was made, and its files in order.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub recorded_by: String,
    pub recorded_at: String,
    /// Finexer's base URL (decides which consent page hosts are expected).
    pub base_url: String,
    /// Whether the check waited for the consent's approval (`--wait-for-approval`).
    pub waited_for_approval: bool,
    pub files: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedAnswer {
    step: u8,
    method: String,
    path: String,
    status: u16,
    content_type: Option<String>,
    retry_after: Option<String>,
    /// The answer's JSON, redacted; null when it was not JSON.
    body: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body_not_json: Option<String>,
}

/// Refuses a directory that already holds files, so recordings never mix.
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not empty", dir.display()),
        ));
    }
    std::fs::create_dir_all(dir)
}

/// Writes `exchanges` (and a webhook delivery, if any) to `dir`, redacted.
pub fn save(
    dir: &Path,
    base_url: &Url,
    waited_for_approval: bool,
    exchanges: &[Exchange],
    webhook: Option<&super::webhook::Delivery>,
) -> io::Result<()> {
    let mut files = Vec::new();
    for (index, exchange) in exchanges.iter().enumerate() {
        let slug: String = exchange
            .path
            .split('/')
            .filter(|part| !part.is_empty())
            .take(1)
            .chain(exchange.path.rsplit('/').next().filter(|p| *p == "revoke"))
            .collect::<Vec<_>>()
            .join("-");
        let name = format!(
            "{:02}-step{}-{}-{slug}.json",
            index + 1,
            exchange.step,
            exchange.method
        );
        let (body, body_not_json) = match exchange.json() {
            Some(mut value) => {
                // Bank names are public; every other `name` is a person's.
                redact(&mut value, exchange.path == "/providers");
                (value, None)
            }
            None => (
                Value::Null,
                Some(format!("{} bytes, not JSON, not kept", exchange.body.len())),
            ),
        };
        let saved = SavedAnswer {
            step: exchange.step,
            method: exchange.method.clone(),
            path: exchange.path.clone(),
            status: exchange.status,
            content_type: exchange.content_type.clone(),
            retry_after: exchange.retry_after.clone(),
            body,
            body_not_json,
        };
        write_json(&dir.join(&name), &saved)?;
        files.push(name);
    }
    if let Some(delivery) = webhook {
        let mut value = serde_json::from_slice(&delivery.body).unwrap_or(Value::Null);
        redact(&mut value, false);
        let headers: Vec<(String, String)> = delivery
            .headers
            .iter()
            .map(|(name, value)| {
                let secret = ["signature", "authorization", "token", "secret", "cookie"]
                    .iter()
                    .any(|word| name.to_ascii_lowercase().contains(word));
                let shown = if secret {
                    REDACTED.to_owned()
                } else {
                    value.clone()
                };
                (name.clone(), shown)
            })
            .collect();
        write_json(
            &dir.join("webhook-event.json"),
            &json!({"headers": headers, "body": value}),
        )?;
    }
    let mut base = base_url.clone();
    let _ = base.set_username("");
    let _ = base.set_password(None);
    base.set_query(None);
    let manifest = Manifest {
        recorded_by: concat!("finexer-check ", env!("CARGO_PKG_VERSION")).to_owned(),
        recorded_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        base_url: base.to_string(),
        waited_for_approval,
        files,
    };
    write_json(&dir.join("manifest.json"), &manifest)
}

fn write_json(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

/// A recording's manifest and answers, in order.
pub fn load(dir: &Path) -> io::Result<(Manifest, Vec<Exchange>)> {
    let read = |name: &str| -> io::Result<String> {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(name).display())))
    };
    let bad = |name: &str, e: serde_json::Error| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}"))
    };
    let manifest: Manifest =
        serde_json::from_str(&read("manifest.json")?).map_err(|e| bad("manifest.json", e))?;
    let mut exchanges = Vec::new();
    for name in &manifest.files {
        let saved: SavedAnswer = serde_json::from_str(&read(name)?).map_err(|e| bad(name, e))?;
        let body = if saved.body_not_json.is_some() {
            Vec::new()
        } else {
            serde_json::to_vec(&saved.body).map_err(|e| bad(name, e))?
        };
        exchanges.push(Exchange {
            step: saved.step,
            method: saved.method,
            path: saved.path,
            status: saved.status,
            content_type: saved.content_type,
            retry_after: saved.retry_after,
            body,
        });
    }
    Ok((manifest, exchanges))
}

pub const REDACTED: &str = "<redacted>";

/// Keys whose values are about a person or their account.
const PERSONAL: &[&str] = &[
    "holder_name",
    "nickname",
    "email",
    "phone",
    "account_number",
    "sort_code",
    "iban",
    "bban",
    "pan",
    "fingerprint",
    "address",
    "first_name",
    "last_name",
    "date_of_birth",
    "description",
];
/// Words that make a key's value a secret.
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "api_key",
    "signature",
    "state",
];

/// Replaces personal data and secrets in place, keeping every field and its
/// JSON type, so the redacted answer still checks and parses as the original
/// did. Ids, statuses and times are kept; `name` is kept only for banks
/// (`keep_names`); metadata keeps its keys; URLs keep their shape with every
/// query value and any token-like path segment replaced.
pub fn redact(value: &mut Value, keep_names: bool) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                let key = key.to_ascii_lowercase();
                let personal = PERSONAL.contains(&key.as_str())
                    || (key == "name" && !keep_names)
                    || SECRET_WORDS.iter().any(|word| key.contains(word));
                if personal {
                    blank(child);
                } else if key == "metadata" {
                    if let Value::Object(entries) = child {
                        entries.values_mut().for_each(blank);
                    }
                } else {
                    redact(child, keep_names);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact(item, keep_names)),
        Value::String(text) => {
            if let Some(url) = redact_url(text) {
                *text = url;
            } else if text.contains('@') || looks_like_token(text) {
                *text = REDACTED.to_owned();
            }
        }
        _ => {}
    }
}

/// Every leaf of `value` replaced, its type kept (null stays null).
fn blank(value: &mut Value) {
    match value {
        Value::String(text) => *text = REDACTED.to_owned(),
        Value::Number(_) => *value = json!(0),
        Value::Bool(flag) => *flag = false,
        Value::Object(object) => object.values_mut().for_each(blank),
        Value::Array(items) => items.iter_mut().for_each(blank),
        Value::Null => {}
    }
}

/// An absolute URL without user info, fragment, query values or token-like
/// path segments; None when `text` is no such URL.
pub fn redact_url(text: &str) -> Option<String> {
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        return None;
    }
    let mut url = Url::parse(text).ok()?;
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    if url.query().is_some() {
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(keys.iter().map(|k| (k.as_str(), "redacted")));
    }
    let segments: Option<Vec<String>> = url.path_segments().map(|segments| {
        segments
            .map(|s| {
                if looks_like_token(s) {
                    "redacted".to_owned()
                } else {
                    s.to_owned()
                }
            })
            .collect()
    });
    if let Some(segments) = segments {
        url.set_path(&segments.join("/"));
    }
    Some(url.to_string())
}

/// A JWT, or a long run of token characters: worth hiding even where the key
/// does not say so. Ids (`bc_...`, `cus_...`) are shorter than this.
fn looks_like_token(text: &str) -> bool {
    let token_chars = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=".contains(&b));
    (text.starts_with("eyJ") && text.matches('.').count() == 2) || (token_chars && text.len() >= 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_and_tokens_go_ids_times_and_types_stay() {
        let mut account = json!({
            "id": "ba_123", "object": "bank_account", "created_at": "2026-01-01T00:00:00Z",
            "holder_name": "Alex Morgan", "nickname": "Main", "currency": "GBP",
            "identification": {"sort_code": "20-00-00", "account_number": "12345678",
                               "iban": "GB00BARC20000012345678", "pan": null},
            "type": "current", "class": "personal", "provider": "sandbox-barclays",
            "consent": "bc_1", "customer": "cus_1", "fingerprint": "f00d", "metadata": {"user_ref": "alice"},
            "limit": 5, "note": "write to alex@example.com"
        });
        redact(&mut account, false);
        assert_eq!(
            account,
            json!({
                "id": "ba_123", "object": "bank_account", "created_at": "2026-01-01T00:00:00Z",
                "holder_name": REDACTED, "nickname": REDACTED, "currency": "GBP",
                "identification": {"sort_code": REDACTED, "account_number": REDACTED,
                                   "iban": REDACTED, "pan": null},
                "type": "current", "class": "personal", "provider": "sandbox-barclays",
                "consent": "bc_1", "customer": "cus_1", "fingerprint": REDACTED, "metadata": {"user_ref": REDACTED},
                "limit": 5, "note": REDACTED
            })
        );

        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
        let mut consent = json!({
            "status": "pending", "customer": {"name": "Alex"},
            "redirect": {
                "return_url": format!("https://u:p@app.example/callback?state={jwt}&x=1#frag"),
                "consent_url": format!("https://connect.finexer.com/c/{}/bc_1?token=abc", "A".repeat(48))
            },
            "session_token": "abc", "other": jwt
        });
        redact(&mut consent, false);
        assert_eq!(
            consent,
            json!({
                "status": "pending", "customer": {"name": REDACTED},
                "redirect": {
                    "return_url": "https://app.example/callback?state=redacted&x=redacted",
                    "consent_url": "https://connect.finexer.com/c/redacted/bc_1?token=redacted"
                },
                "session_token": REDACTED, "other": REDACTED
            })
        );

        let mut banks = json!({"data": [{"id": "b", "name": "Barclays"}]});
        redact(&mut banks, true);
        assert_eq!(banks["data"][0]["name"], "Barclays");
    }
}
