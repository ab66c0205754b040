//! `--webhook-secret`: one delivered webhook event, its `fx-signature`
//! checked with our verifier (`shared::webhook`). The event arrives at a
//! listener this check opens, or comes from a file holding a saved delivery.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::Value;
use shared::webhook::{DEFAULT_TOLERANCE, SIGNATURE_HEADER, WebhookError, verify_signature};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::expected::{self, Difference};

/// One delivery: its headers (names lower-case) and its raw body.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Read from a file rather than received now: an old timestamp is expected.
    pub saved: bool,
}

impl Delivery {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Receives the first POST to any path, answering it 200.
pub struct Listener {
    url: String,
    deliveries: mpsc::Receiver<Delivery>,
    stop: Option<oneshot::Sender<()>>,
}

pub async fn listen(addr: SocketAddr) -> io::Result<Listener> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let (sender, deliveries) = mpsc::channel(1);
    let app = Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(sender);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Listener {
        url: format!("http://{bound}/webhooks/finexer"),
        deliveries,
        stop: Some(stop),
    })
}

async fn receive(
    State(sender): State<mpsc::Sender<Delivery>>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let headers = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    // The first one is checked; later ones are acknowledged and dropped.
    let _ = sender.try_send(Delivery {
        headers,
        body: body.to_vec(),
        saved: false,
    });
    "{\"received\":true}"
}

impl Listener {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The first delivery within `wait`, then stops listening.
    pub async fn receive(mut self, wait: Duration) -> Option<Delivery> {
        let delivery = tokio::time::timeout(wait, self.deliveries.recv())
            .await
            .ok()
            .flatten();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        delivery
    }
}

/// A saved delivery: header lines (`fx-signature: t=...;s=...`; a request
/// line such as `POST /webhooks/finexer HTTP/1.1` is skipped), one empty line,
/// then the body exactly as delivered.
pub fn read_saved(path: &Path) -> io::Result<Delivery> {
    let raw = std::fs::read(path)?;
    let (head, body) = split_head(&raw).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: expected header lines, an empty line, then the body",
                path.display()
            ),
        )
    })?;
    let headers = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            let name = name.trim();
            (!name.is_empty() && !name.contains(' '))
                .then(|| (name.to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    Ok(Delivery {
        headers,
        body: body.to_vec(),
        saved: true,
    })
}

fn split_head(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    [&b"\r\n\r\n"[..], &b"\n\n"[..]]
        .iter()
        .filter_map(|gap| {
            raw.windows(gap.len())
                .position(|w| w == *gap)
                .map(|at| (at, gap.len()))
        })
        .min()
        .map(|(at, len)| (&raw[..at], &raw[at + len..]))
}

/// The delivery against our verifier and the event table: a summary of what
/// arrived, and the differences.
pub fn check(delivery: &Delivery, secret: &[u8], now: OffsetDateTime) -> (String, Vec<Difference>) {
    let mut differences = Vec::new();
    let event: Option<Value> = serde_json::from_slice(&delivery.body).ok();
    let summary = match &event {
        Some(event) => format!(
            "{} {}",
            event["type"].as_str().unwrap_or("(no type)"),
            event["id"].as_str().unwrap_or("(no id)")
        ),
        None => format!("{} bytes", delivery.body.len()),
    };
    match delivery.header(SIGNATURE_HEADER) {
        None => {
            let similar: Vec<&str> = delivery
                .headers
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| n.contains("sig") || n.contains("finexer") || n.contains("hmac"))
                .collect();
            differences.push(Difference {
                path: SIGNATURE_HEADER.into(),
                problem: "no such header".into(),
                hint: if similar.is_empty() {
                    "the event is unsigned, or signed in a way docs/finexer-api.md does not know"
                        .into()
                } else {
                    format!("headers that look like a signature: {}", similar.join(", "))
                },
                breaking: true,
            });
        }
        Some(header) => {
            if let Some(difference) = signature_difference(delivery, header, secret, now) {
                differences.push(difference);
            }
        }
    }
    match &event {
        Some(event) => differences.extend(expected::check(&expected::EVENT, event, false)),
        None => differences.push(Difference {
            path: "(body)".into(),
            problem: "is not JSON".into(),
            hint: "events are JSON documents".into(),
            breaking: true,
        }),
    }
    (summary, differences)
}

fn signature_difference(
    delivery: &Delivery,
    header: &str,
    secret: &[u8],
    now: OffsetDateTime,
) -> Option<Difference> {
    let verify = |body: &[u8]| verify_signature(header, body, &[secret], now, DEFAULT_TOLERANCE);
    let difference = |problem: String, hint: &str, breaking: bool| Difference {
        path: SIGNATURE_HEADER.into(),
        problem,
        hint: hint.into(),
        breaking,
    };
    match verify(&delivery.body) {
        Ok(()) => None,
        Err(WebhookError::Mismatch) if delivery.saved && trimmed(&delivery.body).is_some() => {
            let body = trimmed(&delivery.body).unwrap_or_default();
            match verify(body) {
                Ok(()) | Err(WebhookError::Stale { .. }) => Some(difference(
                    "matches only without the saved file's trailing newline".into(),
                    "save the body byte for byte",
                    false,
                )),
                Err(_) => Some(difference(
                    "does not match the body".into(),
                    MISMATCH_HINT,
                    true,
                )),
            }
        }
        Err(WebhookError::Mismatch) => Some(difference(
            "does not match the body".into(),
            MISMATCH_HINT,
            true,
        )),
        Err(WebhookError::Stale { seconds }) if delivery.saved => Some(difference(
            format!("signature matches; its time is {seconds} s ago"),
            "a saved event is expected to be older than the 5 minutes a live one may be",
            false,
        )),
        Err(WebhookError::Stale { seconds }) => Some(difference(
            format!("signature matches, but its time is {seconds} s from this machine's clock"),
            "events older than 5 minutes are refused: check the clocks",
            true,
        )),
        Err(WebhookError::Malformed(why)) => Some(difference(
            format!("{why} (the header reads {})", header_shape(header)),
            "docs/finexer-api.md expects t=<ISO-8601 UTC>;s=<64 hex digits>",
            true,
        )),
    }
}

const MISMATCH_HINT: &str = "check that FINEXER_WEBHOOK_SECRET is this webhook's signing secret; \
     if it is, Finexer signs something other than \"<t>.\" + the raw body";

fn trimmed(body: &[u8]) -> Option<&[u8]> {
    body.strip_suffix(b"\r\n")
        .or_else(|| body.strip_suffix(b"\n"))
}

/// The header with its signature values replaced by their length.
fn header_shape(header: &str) -> String {
    header
        .split(';')
        .map(|part| match part.trim().split_once('=') {
            Some((key, value)) if key.trim() != "t" => {
                format!("{}=<{} characters>", key.trim(), value.trim().len())
            }
            _ => part.trim().chars().take(60).collect(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// How to have Finexer deliver one event to this check.
pub fn instructions(listening: Option<&str>) -> Vec<String> {
    let mut lines = vec![
        "Webhooks: in Finexer's dashboard, add a webhook endpoint for consent events at the deployed stack:".to_owned(),
        "  https://<ApiUrl>/webhooks/finexer   (ApiUrl: the stack's output; the webhook function serves it)".to_owned(),
        "  and put its signing secret in the stack's WebhookSecrets (webhook_secrets) and in FINEXER_WEBHOOK_SECRET here.".to_owned(),
    ];
    match listening {
        Some(url) => lines.push(format!(
            "  To check the signature here, have Finexer deliver one event to {url} (through a tunnel if Finexer is not local); waiting for it after the journey."
        )),
        None => lines.push("  Checking the saved delivery given with --webhook-event.".to_owned()),
    }
    lines
}

#[cfg(test)]
mod tests {
    use finexer_sandbox::webhooks::signature_header;

    use super::*;

    fn delivery(header: Option<String>, body: &[u8], saved: bool) -> Delivery {
        Delivery {
            headers: header
                .map(|h| vec![(SIGNATURE_HEADER.to_owned(), h)])
                .unwrap_or_default(),
            body: body.to_vec(),
            saved,
        }
    }

    const EVENT: &[u8] =
        br#"{"id":"evt_1","object":"event","type":"consent.canceled","data":{"object":{"id":"bc_1"}}}"#;

    #[test]
    fn a_signed_event_checks_clean_and_a_wrong_secret_does_not() {
        let now = OffsetDateTime::now_utc();
        let at = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let header = signature_header("whsec", &at, EVENT);
        let (summary, found) = check(&delivery(Some(header.clone()), EVENT, false), b"whsec", now);
        assert_eq!(summary, "consent.canceled evt_1");
        assert_eq!(found, vec![]);

        let (_, found) = check(&delivery(Some(header.clone()), EVENT, false), b"other", now);
        assert_eq!(found.len(), 1);
        assert!(found[0].breaking && found[0].problem == "does not match the body");

        // A saved file with an editor's newline: a note, not a failure.
        let mut saved = EVENT.to_vec();
        saved.push(b'\n');
        let (_, found) = check(&delivery(Some(header), &saved, true), b"whsec", now);
        assert!(!found[0].breaking, "{found:?}");

        let (_, found) = check(&delivery(None, EVENT, false), b"whsec", now);
        assert_eq!(found[0].path, "fx-signature");
        assert!(found[0].breaking);
    }

    #[test]
    fn a_saved_delivery_is_read_with_its_headers() {
        let dir = std::env::temp_dir().join(format!("fx-saved-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("event.txt");
        let mut raw = b"POST /webhooks/finexer HTTP/1.1\r\nFx-Signature: t=x;s=y\r\nContent-Type: application/json\r\n\r\n".to_vec();
        raw.extend_from_slice(EVENT);
        std::fs::write(&file, raw).unwrap();
        let saved = read_saved(&file).unwrap();
        assert_eq!(saved.header("fx-signature"), Some("t=x;s=y"));
        assert_eq!(saved.body, EVENT);
        assert!(saved.saved);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
