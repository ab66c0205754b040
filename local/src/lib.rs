//! The whole system on one machine: every function's handler behind the same
//! routes as the deployed HTTP API, a stand-in for its JWT authorizer, the
//! Finexer sandbox, and a demo frontend. Local only: no Lambda binary links it.

mod authorizer;
mod bootstrap;
pub mod finexer_check;
mod gateway;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use shared::App;
use shared::config::Config;
use shared::secrets::SecretsManagerSource;
use shared::store::dynamo::DynamoStore;

pub use authorizer::LocalAuthorizer;
pub use gateway::Function;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source} (is the port taken? set {variable} to use another)")]
    Bind {
        addr: SocketAddr,
        variable: &'static str,
        source: std::io::Error,
    },
    #[error("the local AWS emulator: {0}")]
    Emulator(String),
}

/// Where everything listens, and the local-only settings.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// API and demo page (`LOCAL_ADDR`, default 127.0.0.1:3000).
    pub addr: SocketAddr,
    /// In-process Finexer sandbox (`SANDBOX_ADDR`, default 127.0.0.1:3001);
    /// None when `FINEXER_BASE_URL` names another Finexer.
    pub sandbox_addr: Option<SocketAddr>,
    /// Sandbox latency per API call (`SANDBOX_LATENCY_MS`).
    pub sandbox_latency_ms: u64,
    /// HS256 secret of locally minted user tokens (`LOCAL_JWT_SECRET`).
    pub jwt_secret: String,
    /// The AWS emulator (`AWS_ENDPOINT_URL`); must be on loopback.
    pub aws_endpoint: Option<String>,
    /// Function configuration set in the environment; the rest defaults to
    /// the local addresses.
    pub overrides: Vec<(String, String)>,
}

pub const SANDBOX_API_KEY: &str = finexer_sandbox::config::DEFAULT_API_KEY;

impl LocalConfig {
    pub fn from_env() -> Result<Self, LocalError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LocalError> {
        let addr_of = |name: &str, default: &str| -> Result<SocketAddr, LocalError> {
            let raw = lookup(name).unwrap_or_else(|| default.to_owned());
            let addr: SocketAddr = raw.parse().map_err(|_| {
                LocalError::Config(format!("{name} must be host:port, not {raw:?}"))
            })?;
            if !addr.ip().is_loopback() {
                return Err(LocalError::Config(format!(
                    "{name} must be a loopback address: the local stack is not for networks"
                )));
            }
            Ok(addr)
        };
        let addr = addr_of("LOCAL_ADDR", "127.0.0.1:3000")?;
        let external_finexer = lookup("FINEXER_BASE_URL");
        let sandbox_addr = match external_finexer {
            Some(_) => None,
            None => Some(addr_of("SANDBOX_ADDR", "127.0.0.1:3001")?),
        };
        let sandbox_latency_ms = lookup("SANDBOX_LATENCY_MS")
            .map(|v| v.parse())
            .transpose()
            .map_err(|_| LocalError::Config("SANDBOX_LATENCY_MS must be a number".into()))?
            .unwrap_or(0);

        let overrides = shared::config::VARIABLES
            .iter()
            .filter_map(|(name, _, _)| lookup(name).map(|v| (name.to_string(), v)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Ok(LocalConfig {
            addr,
            sandbox_addr,
            sandbox_latency_ms,
            jwt_secret: lookup("LOCAL_JWT_SECRET").unwrap_or_else(|| "local-dev-secret".into()),
            aws_endpoint: lookup("AWS_ENDPOINT_URL"),
            overrides,
        })
    }

    /// The functions' configuration for a stack bound at `addr`, with the
    /// sandbox (if any) at `sandbox`.
    pub fn function_config(
        &self,
        addr: SocketAddr,
        sandbox: Option<SocketAddr>,
    ) -> Result<Config, LocalError> {
        let defaults = [
            ("CONSENT_TABLE", "connect-local".to_owned()),
            ("CONNECT_SECRET_ID", "connect-local/secret".to_owned()),
            ("CALLBACK_URL", format!("http://{addr}/callback")),
            // Both names of the loopback host, so the demo works from either.
            (
                "FRONTEND_URLS",
                format!(
                    "http://{addr}/connected,http://localhost:{}/connected",
                    addr.port()
                ),
            ),
            (
                "FINEXER_BASE_URL",
                sandbox.map_or_else(String::new, |a| format!("http://{a}")),
            ),
            // The demo shows accounts; deployments decide for themselves.
            ("ACCOUNT_DATA_ENABLED", "true".to_owned()),
        ];
        Config::from_lookup(|name| {
            let set = self.overrides.iter().find(|(n, _)| n == name);
            let default = defaults.iter().find(|(n, _)| *n == name);
            set.map(|(_, v)| v)
                .or(default.map(|(_, v)| v))
                .filter(|v| !v.is_empty())
                .cloned()
        })
        .map_err(|e| LocalError::Config(e.to_string()))
    }
}

pub struct LocalState {
    pub app: App,
    pub authorizer: LocalAuthorizer,
}

/// The running stack; dropping it stops the servers.
pub struct RunningStack {
    pub base_url: String,
    pub sandbox: Option<finexer_sandbox::RunningSandbox>,
    pub state: Arc<LocalState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl RunningStack {
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
        if let Some(sandbox) = self.sandbox.take() {
            sandbox.shutdown().await;
        }
    }
}

/// Checks that AWS calls can only reach a local emulator.
fn emulator_endpoint(config: &LocalConfig) -> Result<String, LocalError> {
    let endpoint = config.aws_endpoint.clone().ok_or_else(|| {
        LocalError::Config(
            "AWS_ENDPOINT_URL is not set: start the stack with `make dev` (it starts the emulator)"
                .into(),
        )
    })?;
    let url = url::Url::parse(&endpoint)
        .map_err(|_| LocalError::Config(format!("AWS_ENDPOINT_URL {endpoint:?} is not a URL")))?;
    if !matches!(url.host_str(), Some("127.0.0.1" | "localhost")) {
        return Err(LocalError::Config(format!(
            "AWS_ENDPOINT_URL must point at 127.0.0.1, not {endpoint}"
        )));
    }
    Ok(endpoint)
}

pub async fn start(config: LocalConfig) -> Result<RunningStack, LocalError> {
    let endpoint = emulator_endpoint(&config)?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|source| LocalError::Bind {
            addr: config.addr,
            variable: "LOCAL_ADDR",
            source,
        })?;
    // Port 0 means "any free port": URLs are derived from what was bound.
    let addr = listener.local_addr().map_err(|source| LocalError::Bind {
        addr: config.addr,
        variable: "LOCAL_ADDR",
        source,
    })?;

    let sandbox = match config.sandbox_addr {
        Some(bind) => Some(
            finexer_sandbox::start(finexer_sandbox::SandboxConfig {
                bind,
                latency_ms: config.sandbox_latency_ms,
                ..Default::default()
            })
            .await
            .map_err(|source| LocalError::Bind {
                addr: bind,
                variable: "SANDBOX_ADDR",
                source,
            })?,
        ),
        None => None,
    };
    let function_config = config.function_config(addr, sandbox.as_ref().map(|s| s.addr()))?;

    let aws = shared::net::aws_config_loader()
        .map_err(|e| LocalError::Emulator(e.to_string()))?
        .endpoint_url(&endpoint)
        .load()
        .await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    bootstrap::ensure_table(&dynamo, &function_config.table_name)
        .await
        .map_err(|e| LocalError::Emulator(format!("{e} (at {endpoint})")))?;
    bootstrap::ensure_secret(&secrets, &function_config.secret_id, SANDBOX_API_KEY)
        .await
        .map_err(|e| LocalError::Emulator(format!("{e} (at {endpoint})")))?;

    let store = DynamoStore::new(dynamo, &function_config.table_name);
    let secret_source = SecretsManagerSource::new(
        secrets,
        function_config.secret_id.clone(),
        function_config.secrets_cache_ttl,
    );
    let app = App::new(function_config, Arc::new(store), Arc::new(secret_source))
        .map_err(|e| LocalError::Config(e.to_string()))?;
    let state = Arc::new(LocalState {
        app,
        authorizer: LocalAuthorizer::new(&config.jwt_secret),
    });

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = router(state.clone());
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "local server stopped");
        }
    });
    Ok(RunningStack {
        base_url: format!("http://{addr}"),
        sandbox,
        state,
        shutdown: Some(tx),
        server,
    })
}

pub fn router(state: Arc<LocalState>) -> Router {
    use gateway::invoke;
    Router::new()
        // The deployed HTTP API's routes, each to its function.
        .route("/links", post(|s, r| invoke(s, Function::CreateLink, r)))
        .route("/callback", get(|s, r| invoke(s, Function::Callback, r)))
        .route(
            "/consents/{id}/revoke",
            post(|s, r| invoke(s, Function::Revoke, r)),
        )
        .route(
            "/consents/{id}/confirm",
            post(|s, r| invoke(s, Function::Confirm, r)),
        )
        .route("/consents", get(|s, r| invoke(s, Function::Consents, r)))
        .route(
            "/consents/{id}",
            get(|s, r| invoke(s, Function::Consents, r)),
        )
        .route(
            "/consents/{id}/accounts",
            get(|s, r| invoke(s, Function::Consents, r)),
        )
        .route("/accounts", get(|s, r| invoke(s, Function::Consents, r)))
        // Local only: sign-in and the demo frontend.
        .route("/local/token", post(authorizer::mint))
        .route("/", get(index))
        .route("/connected", get(index))
        .route("/static/{file}", get(static_file))
        .fallback(gateway::not_found)
        .with_state(state)
}

const STATIC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/static");

async fn index(State(_): State<Arc<LocalState>>) -> Response {
    static_file(Path("index.html".into())).await
}

/// Served from disk so the page can be edited without a rebuild.
async fn static_file(Path(file): Path<String>) -> Response {
    let kind = match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let safe = !file.is_empty()
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !file.starts_with('.');
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(format!("{STATIC_DIR}/{file}")).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// How long the demo's tokens last.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(8 * 3600);
