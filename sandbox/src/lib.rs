//! A local stand-in for Finexer, the UK Open Banking provider: the API subset
//! in `docs/finexer-api.md` plus the hosted consent page, with fault
//! injection and a request log for tests.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sandbox = finexer_sandbox::start(finexer_sandbox::SandboxConfig::default()).await?;
//! println!("Finexer sandbox at {}", sandbox.base_url());
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

pub mod accounts;
pub mod admin;
pub mod api;
pub mod client;
pub mod clock;
pub mod config;
pub mod faults;
pub mod forgeries;
pub mod ids;
pub mod model;
pub mod mutations;
pub mod pages;
pub mod providers;
pub mod request_log;
pub mod state;
pub mod store;
pub mod webhooks;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use api::error::ApiError;
pub use config::SandboxConfig;
pub use faults::FaultRule;
pub use state::SandboxState;

/// How long `shutdown` waits for open connections before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The whole sandbox as one router: API, consent page, admin endpoints.
pub fn router(state: SandboxState) -> Router {
    Router::new()
        .merge(api::routes(state.clone()))
        .merge(pages::routes())
        .merge(admin::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            mutations::mutate_answers,
        ))
        // Outermost last: the log sees the status after faults.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            faults::inject_faults,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_log::record_requests,
        ))
        .with_state(state)
}

async fn unknown_route() -> Response {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "unknown_url",
        "Unrecognized request URL.",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This URL does not accept that method.",
    )
    .into_response()
}

/// Binds `config.bind` and serves until `shutdown` or drop.
pub async fn start(config: SandboxConfig) -> io::Result<RunningSandbox> {
    let listener = TcpListener::bind(config.bind).await?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");
    let public_base_url = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| base_url.clone());
    let state = SandboxState::new(&config, &public_base_url)?;
    let app = router(state.clone());

    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                // A dropped sender also means stop.
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%addr, "Finexer sandbox listening");
    Ok(RunningSandbox {
        addr,
        base_url,
        state,
        stop: Some(stop),
        server: Some(server),
    })
}

/// A sandbox serving in the background of the current Tokio runtime.
pub struct RunningSandbox {
    addr: SocketAddr,
    base_url: String,
    state: SandboxState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<io::Result<()>>>,
}

impl RunningSandbox {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base of consent links (equal to `base_url` unless configured).
    pub fn public_base_url(&self) -> String {
        self.state.public_base_url.clone()
    }

    /// A typed client of this sandbox's admin API.
    pub fn admin(&self) -> client::Admin {
        client::Admin::new(self.base_url())
    }

    /// Direct access to the records, fault rules and request log.
    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    /// Stops accepting connections and waits (briefly) for open ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
