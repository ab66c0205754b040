//! The whole system on one machine: every function's handler behind the same
//! routes as the deployed HTTP API, a stand-in for its JWT authorizer and its
//! CORS, the Finexer sandbox, and a demo frontend. The demo is served on
//! another site (`http://localhost:<DEMO_ADDR port>`) than the API
//! (`http://<LOCAL_ADDR>`), as a platform's frontend is in production, so the
//! browser applies CORS and cookie rules as it does there. Local only: no
//! Lambda binary links it.

mod authorizer;
mod bootstrap;
pub mod cors;
pub mod finexer_check;
mod gateway;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodFilter, get, on, post};
use shared::App;
use shared::config::Config;
use shared::secrets::SecretsManagerSource;
use shared::store::dynamo::DynamoStore;

pub use authorizer::LocalAuthorizer;
pub use cors::Cors;

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
    /// The API (`LOCAL_ADDR`, default 127.0.0.1:3000).
    pub addr: SocketAddr,
    /// The demo frontend and its sign-in (`DEMO_ADDR`, default
    /// 127.0.0.1:3002), opened as `http://localhost:<port>`: another site.
    pub demo_addr: SocketAddr,
    /// In-process Finexer sandbox (`SANDBOX_ADDR`, default 127.0.0.1:3001);
    /// None when `FINEXER_BASE_URL` names another Finexer.
    pub sandbox_addr: Option<SocketAddr>,
    /// Sandbox latency per API call (`SANDBOX_LATENCY_MS`).
    pub sandbox_latency_ms: u64,
    /// Each invocation's time limit, as the function timeout is on Lambda
    /// (`LOCAL_TIMEOUT_MS`, default 28000).
    pub invocation_timeout: Duration,
    /// HS256 secret of locally minted user tokens (`LOCAL_JWT_SECRET`).
    pub jwt_secret: String,
    /// The AWS emulator (`AWS_ENDPOINT_URL`); must be on loopback.
    pub aws_endpoint: Option<String>,
    /// Function configuration set in the environment; the rest defaults to
    /// the local addresses.
    pub overrides: Vec<(String, String)>,
    /// How often the reconciler runs on its own, as the schedule runs it in
    /// AWS (`LOCAL_RECONCILE_SECONDS`, default 5; 0: only on
    /// `POST /local/reconcile`).
    pub reconcile_every: Option<Duration>,
    /// Where the functions' metrics go (EMF lines); stdout when None, as in
    /// Lambda. Tests capture them.
    pub metrics_sink: Option<shared::metrics::Sink>,
}

/// The webhook signing secret the local sandbox signs with and the local
/// secret lists in `webhook_secrets`. Local only: a deployment gets its own
/// from Finexer.
pub const LOCAL_WEBHOOK_SECRET: &str = "whsec_local_sandbox_only";

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
        let demo_addr = addr_of("DEMO_ADDR", "127.0.0.1:3002")?;
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
        let invocation_timeout = lookup("LOCAL_TIMEOUT_MS")
            .map(|v| v.parse::<u64>())
            .transpose()
            .map_err(|_| LocalError::Config("LOCAL_TIMEOUT_MS must be a number".into()))?
            .map_or(shared::deadline::DEFAULT_INVOCATION, Duration::from_millis);

        let reconcile_every = match lookup("LOCAL_RECONCILE_SECONDS") {
            None => Some(Duration::from_secs(5)),
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(0) => None,
                Ok(seconds) => Some(Duration::from_secs(seconds)),
                Err(_) => {
                    return Err(LocalError::Config(
                        "LOCAL_RECONCILE_SECONDS must be a whole number of seconds".into(),
                    ));
                }
            },
        };
        let overrides = shared::config::VARIABLES
            .iter()
            .filter_map(|(name, _, _)| lookup(name).map(|v| (name.to_string(), v)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Ok(LocalConfig {
            addr,
            demo_addr,
            sandbox_addr,
            sandbox_latency_ms,
            invocation_timeout,
            jwt_secret: lookup("LOCAL_JWT_SECRET").unwrap_or_else(|| "local-dev-secret".into()),
            aws_endpoint: lookup("AWS_ENDPOINT_URL"),
            overrides,
            reconcile_every,
            metrics_sink: None,
        })
    }

    /// The functions' configuration for an API bound at `addr`, the demo
    /// frontend at `demo_url`, and the sandbox (if any) at `sandbox`.
    pub fn function_config(
        &self,
        addr: SocketAddr,
        demo_url: &str,
        sandbox: Option<SocketAddr>,
    ) -> Result<Config, LocalError> {
        let defaults = [
            ("CONSENT_TABLE", "connect-local".to_owned()),
            // The local stack serves every route from one process: it reads all three.
            (
                "FINEXER_API_KEY_SECRET_ID",
                "connect-local/finexer-api-key".to_owned(),
            ),
            (
                "STATE_KEYS_SECRET_ID",
                "connect-local/state-keys".to_owned(),
            ),
            (
                "WEBHOOK_SECRETS_SECRET_ID",
                "connect-local/webhook-secrets".to_owned(),
            ),
            ("CALLBACK_URL", format!("http://{addr}/callback")),
            ("FRONTEND_URLS", format!("{demo_url}/connected")),
            // The code's default becomes false (showing account data needs FCA
            // authorisation); the demo shows the sandbox's accounts.
            ("ACCOUNT_DATA_ENABLED", "true".to_owned()),
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
    pub invocation_timeout: Duration,
}

/// The running stack; dropping it stops the servers.
pub struct RunningStack {
    /// The API, `http://<LOCAL_ADDR>`.
    pub base_url: String,
    /// The demo frontend, `http://localhost:<DEMO_ADDR port>`: another site
    /// than the API.
    pub demo_url: String,
    pub sandbox: Option<finexer_sandbox::RunningSandbox>,
    pub state: Arc<LocalState>,
    shutdown: Option<tokio::sync::watch::Sender<()>>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningStack {
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for server in self.servers.drain(..) {
            let _ = server.await;
        }
        if let Some(sandbox) = self.sandbox.take() {
            sandbox.shutdown().await;
        }
    }
}

async fn bind(
    addr: SocketAddr,
    variable: &'static str,
) -> Result<(tokio::net::TcpListener, SocketAddr), LocalError> {
    let error = |source| LocalError::Bind {
        addr,
        variable,
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(error)?;
    // Port 0 means "any free port": URLs are derived from what was bound.
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

/// Serves `router` until `stop` fires or its sender is dropped.
fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    mut stop: tokio::sync::watch::Receiver<()>,
    what: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "local {what} server stopped");
        }
    })
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
    let (listener, addr) = bind(config.addr, "LOCAL_ADDR").await?;
    let (demo_listener, demo_addr) = bind(config.demo_addr, "DEMO_ADDR").await?;
    // The browser's name for the demo's host: `localhost` is another site
    // than the API's 127.0.0.1, as a platform's frontend is in production.
    let demo_url = format!("http://localhost:{}", demo_addr.port());
    let base_url = format!("http://{addr}");

    let sandbox = match config.sandbox_addr {
        Some(bind) => Some(
            finexer_sandbox::start(finexer_sandbox::SandboxConfig {
                bind,
                latency_ms: config.sandbox_latency_ms,
                // Its events go to our webhook route, as Finexer's would.
                webhook_url: Some(format!("{base_url}/webhooks/finexer")),
                webhook_secret: LOCAL_WEBHOOK_SECRET.to_owned(),
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
    let function_config =
        config.function_config(addr, &demo_url, sandbox.as_ref().map(|s| s.addr()))?;
    let cors = Cors::for_frontends(&function_config.frontend_urls);

    let aws_with = |attempt_timeout| {
        shared::net::aws_config_loader(attempt_timeout)
            .map(|loader| loader.endpoint_url(&endpoint))
            .map_err(|e| LocalError::Emulator(e.to_string()))
    };
    // Setting up the table and secrets is not a request: it may wait longer
    // than the functions' per-attempt timeout allows.
    let setup = aws_with(BOOTSTRAP_TIMEOUT)?.load().await;
    bootstrap::ensure_table(
        &aws_sdk_dynamodb::Client::new(&setup),
        &function_config.table_name,
    )
    .await
    .map_err(|e| LocalError::Emulator(format!("{e} (at {endpoint})")))?;
    bootstrap::ensure_secrets(
        &aws_sdk_secretsmanager::Client::new(&setup),
        &function_config.secret_ids,
        SANDBOX_API_KEY,
    )
    .await
    .map_err(|e| LocalError::Emulator(format!("{e} (at {endpoint})")))?;
    let aws = aws_with(function_config.store_timeout)?.load().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);

    let store = DynamoStore::new(dynamo, &function_config.table_name);
    let secret_source = SecretsManagerSource::new(
        secrets,
        function_config.secret_ids.clone(),
        function_config.secrets_cache_ttl,
    );
    let mut app = App::new(function_config, Arc::new(store), Arc::new(secret_source))
        .map_err(|e| LocalError::Config(e.to_string()))?;
    if let Some(sink) = config.metrics_sink.clone() {
        app = app.with_metrics_sink(sink);
    }
    let state = Arc::new(LocalState {
        app,
        authorizer: LocalAuthorizer::new(&config.jwt_secret),
        invocation_timeout: config.invocation_timeout,
    });

    let (tx, rx) = tokio::sync::watch::channel(());
    let mut servers = vec![
        serve(listener, api_router(state.clone(), cors), rx.clone(), "API"),
        serve(
            demo_listener,
            demo_router(
                state.clone(),
                Demo {
                    url: demo_url.clone(),
                    api_url: base_url.clone(),
                },
            ),
            rx.clone(),
            "demo",
        ),
    ];
    if let Some(every) = config.reconcile_every {
        servers.push(reconcile_every(state.clone(), every, rx));
    }
    Ok(RunningStack {
        base_url,
        demo_url,
        sandbox,
        state,
        shutdown: Some(tx),
        servers,
    })
}

/// The reconciler on a timer, as EventBridge Scheduler runs it in AWS.
fn reconcile_every(
    state: Arc<LocalState>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = ticks.tick() => {
                    if let Err(e) = gateway::reconcile_once(&state, Default::default()).await {
                        tracing::warn!(error = %e, "local reconcile run failed");
                    }
                }
            }
        }
    })
}

/// The deployed HTTP API: its routes, each to its function, behind the
/// gateway's CORS.
pub fn api_router(state: Arc<LocalState>, cors: Cors) -> Router {
    let mut routes = Router::new();
    // The deployed HTTP API's routes, each to its function: the route table.
    for route in shared::routes::ROUTES {
        let method = route
            .method()
            .parse::<axum::http::Method>()
            .ok()
            .and_then(|method| MethodFilter::try_from(method).ok())
            .expect("the route table's methods are HTTP methods (its tests check)");
        routes = routes.route(
            route.path(),
            on(method, move |s, r| gateway::invoke(s, route, r)),
        );
    }
    let routes = routes
        // Local only: the schedule's job, on demand.
        .route("/local/reconcile", post(gateway::reconcile_now))
        .fallback(gateway::not_found)
        .with_state(state);
    // Around the whole router, not layered onto each route: the gateway
    // answers a preflight before any route is matched.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(cors),
            cors::layer,
        ))
}

/// Where the demo is and where it finds the API.
#[derive(Debug, Clone)]
pub struct Demo {
    /// `http://localhost:<port>`.
    pub url: String,
    /// The API's origin, given to the page in `<meta name="connect-api">`.
    pub api_url: String,
}

/// The platform's side, local only: the demo frontend and its sign-in (the
/// platform's own auth mints user tokens, not our API).
pub fn demo_router(state: Arc<LocalState>, demo: Demo) -> Router {
    let demo = Arc::new(demo);
    let page = {
        let demo = demo.clone();
        move |request: Request| index(demo.clone(), request)
    };
    if !std::path::Path::new(KIT_DIR).join("index.js").is_file() {
        tracing::warn!(
            "the web kit is not built ({KIT_DIR}/index.js): the demo page needs it; run scripts/web.sh build"
        );
    }
    Router::new()
        .route("/", get(page.clone()))
        .route("/connected", get(page))
        .route(
            "/static/{file}",
            get(|Path(file): Path<String>| serve_file(STATIC_DIR, file)),
        )
        .route(
            "/kit/{file}",
            get(|Path(file): Path<String>| serve_file(KIT_DIR, file)),
        )
        .route("/local/token", post(authorizer::mint))
        .fallback(gateway::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(access_log))
}

/// The demo's access log, as a frontend's web server keeps one: each request
/// line it served (path and query) and the status. A bank's return arrives
/// here with `consent_id` and `status` only: its one-time code is in the
/// fragment, which browsers never send (the browser tests read this log).
async fn access_log(request: Request, next: axum::middleware::Next) -> Response {
    let line = format!("{} {}", request.method(), request.uri());
    let response = next.run(request).await;
    tracing::info!(target: "demo_access", "{line} {}", response.status().as_u16());
    response
}

const STATIC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/static");
/// The web kit's build (`scripts/web.sh build`), which the demo page imports
/// as `/kit/index.js`.
const KIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../clients/web/dist");
/// The tag in index.html that receives the API's origin.
const API_META: &str = r#"<meta name="connect-api" content="">"#;

/// index.html, with the API's origin filled in. Opened under another host
/// name (127.0.0.1 is the same site as the API), the page redirects to the
/// demo's own URL, the one origin the API admits.
async fn index(demo: Arc<Demo>, request: Request) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if host != demo.url.strip_prefix("http://") {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        return Redirect::temporary(&format!("{}{path}", demo.url)).into_response();
    }
    let Ok(html) = tokio::fs::read_to_string(format!("{STATIC_DIR}/index.html")).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // The origin is built from a socket address: nothing to escape.
    let html = html.replace(
        API_META,
        &format!(r#"<meta name="connect-api" content="{}">"#, demo.api_url),
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// Served from disk so the page (and the kit) can change without a rebuild.
async fn serve_file(dir: &str, file: String) -> Response {
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
    match tokio::fs::read(format!("{dir}/{file}")).await {
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

/// Per-attempt timeout of the start-up calls that create the table and secret.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the demo's tokens last.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(8 * 3600);
