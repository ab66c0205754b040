//! A counting HTTP proxy on 127.0.0.1 in front of one upstream (moto or the
//! Finexer sandbox). It logs every call with its operation (the `X-Amz-Target`
//! for AWS, method and path for Finexer) and its start and end on the
//! harness's clock, and can hold each call for a fixed delay so that calls in
//! flight together overlap unmistakably and sequential ones cannot.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use connect_benches::rounds::Call;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds on the harness's clock.
pub fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

#[derive(Debug, Clone)]
pub struct Record {
    pub upstream: &'static str,
    pub op: String,
    pub start_us: u64,
    pub end_us: u64,
    pub status: u16,
}

impl Record {
    pub fn call(&self) -> Call {
        Call {
            start_us: self.start_us,
            end_us: self.end_us,
            label: format!("{} {}", self.upstream, self.op),
        }
    }
}

struct Shared {
    name: &'static str,
    upstream: String,
    client: reqwest::Client,
    delay_ms: AtomicU64,
    log: Mutex<Vec<Record>>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _server: tokio::task::JoinHandle<()>,
}

const HOP_BY_HOP: [&str; 6] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
];

impl Proxy {
    pub async fn start(name: &'static str, upstream: &str) -> Result<Proxy, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            name,
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
            delay_ms: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .fallback(forward)
            .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| format!("proxy {name}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Proxy {
            addr,
            shared,
            _server: server,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Takes the log so far, leaving it empty.
    pub fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.shared.log.lock().expect("proxy log"))
    }
}

/// A Finexer path with its ids replaced, so calls group by route.
fn route(path: &str) -> String {
    const LITERALS: [&str; 8] = [
        "consents",
        "customers",
        "revoke",
        "bank_accounts",
        "providers",
        "balance",
        "transactions",
        "sync",
    ];
    path.split('/')
        .map(|s| {
            if s.is_empty() || LITERALS.contains(&s) {
                s
            } else {
                "{id}"
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn forward(State(s): State<Arc<Shared>>, request: Request) -> Response {
    let start_us = now_us();
    let (parts, body) = request.into_parts();
    let op = match parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        Some(target) => target
            .replace("DynamoDB_20120810.", "DynamoDB.")
            .replace("secretsmanager.", "SecretsManager."),
        None => format!("{} {}", parts.method, route(parts.uri.path())),
    };
    let Ok(body) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let delay = s.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut outbound = s
        .client
        .request(parts.method.clone(), format!("{}{path}", s.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outbound = outbound.header(name, value);
        }
    }
    let (status, response) = match outbound.send().await {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let bytes = answer.bytes().await.unwrap_or_else(|_| Bytes::new());
            let mut response = Response::builder().status(status);
            for (name, value) in &headers {
                if !HOP_BY_HOP.contains(&name.as_str()) {
                    response = response.header(HeaderName::from(name), value);
                }
            }
            let response = response
                .body(Body::from(bytes))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
            (status.as_u16(), response)
        }
        Err(e) => (
            502,
            (StatusCode::BAD_GATEWAY, format!("proxy {}: {e}", s.name)).into_response(),
        ),
    };
    s.log.lock().expect("proxy log").push(Record {
        upstream: s.name,
        op,
        start_us,
        end_us: now_us(),
        status,
    });
    response
}
