//! The start-up prefetch: what a cold start's first request would do one
//! step after another (fetch its secrets, open a TLS connection to DynamoDB,
//! open one to Finexer when that request calls it, read the provider list
//! in the callback) is started in the background once the runtime has asked
//! for the first event, and never awaited before that `GET /next`. Under the
//! `current_thread` runtime the tasks run while the runtime waits for the
//! first event, and keep running beside the first request.
//!
//! The first request joins what is in flight rather than starting it again:
//! - a secret: each secret's cache ([`crate::secrets`]) holds its lock for
//!   the whole fetch, so a request that asks meanwhile waits for
//!   that fetch and reads its result;
//! - the connections: a request that finds no idle connection in the pool
//!   takes whichever comes first, a connection the prefetch returns to the
//!   pool or one of its own (hyper's pool checkout races its connect), so it
//!   never waits longer than without the prefetch.
//!
//! A failure is only logged (never a secret: the errors name the call and
//! the transport's reason); the first request then does the work itself.
//! `STARTUP_PREFETCH=false` turns it off.

use crate::app::App;
use crate::routes::Function;

/// Scheduler turns the prefetch lets pass before it starts: the Lambda
/// runtime's first `GET /next` takes three (connect, hyper's handshake, its
/// connection task's write), so init ends before the prefetch's CPU work
/// (request signing, TLS key shares) begins. Turns, not time: a turn is a
/// few microseconds, however slow the CPU share.
const RUNTIME_TURNS: usize = 16;

/// Spawns the prefetch for `function` on the current runtime, unless the
/// configuration turns it off. Returns at once.
pub fn start(app: &'static App, function: Function) {
    if !app.config.startup_prefetch {
        return;
    }
    tokio::spawn(async move {
        for _ in 0..RUNTIME_TURNS {
            tokio::task::yield_now().await;
        }
        spawn_parts(app, function);
    });
}

/// Whether the function's usual first request calls Finexer. Listing
/// consents and confirming one do not; their Finexer routes (accounts,
/// reconfirm) open their own connection, and the prefetch's TLS handshake
/// would only compete for the CPU with the listing.
fn first_request_calls_finexer(function: Function) -> bool {
    !matches!(function, Function::Consents | Function::Confirm)
}

fn spawn_parts(app: &'static App, function: Function) {
    // Each function is configured with the secrets it reads, and only those.
    // Spawned in the order the first request needs them, which is also the
    // order of their TLS handshakes' CPU work and of their requests: a
    // secret first (the callback verifies its state before anything else),
    // then DynamoDB, then Finexer.
    let ids = &app.config.secret_ids;
    if ids.state_keys.is_some() {
        spawn(app, function, "state_keys", async move {
            app.secrets.state_keys().await.map(drop)
        });
    }
    if ids.webhook_secrets.is_some() {
        spawn(app, function, "webhook_secrets", async move {
            app.secrets.webhook_secrets().await.map(drop)
        });
    }
    let calls_finexer = ids.finexer_api_key.is_some() && first_request_calls_finexer(function);
    if calls_finexer {
        spawn(app, function, "finexer_api_key", async move {
            app.secrets.finexer_api_key().await.map(drop)
        });
    }
    spawn(app, function, "dynamodb", async move {
        app.store.warm_up().await
    });
    if !calls_finexer {
        return;
    }
    // The callback's first request reads the consent at Finexer while the
    // provider list below is read: one connection for each, or one call
    // waits for the other (HTTP/1.1, one request at a time).
    let connections = if function == Function::Callback { 2 } else { 1 };
    for _ in 0..connections {
        spawn(app, function, "finexer", async move {
            app.finexer.warm_up().await
        });
    }
    if function == Function::Callback {
        // An approval shows the bank's name, from Finexer's provider list.
        spawn(app, function, "bank_names", async move {
            crate::handlers::callback::bank_names(app).await.map(drop)
        });
    }
}

/// Spawns one part in `function`'s metrics scope, so that what it emits
/// (a secret fetch's `SecretsRefresh`) is counted like a request's.
fn spawn<F>(app: &'static App, function: Function, part: &'static str, work: F)
where
    F: std::future::Future<Output = crate::Result<()>> + Send + 'static,
{
    tokio::spawn(app.metrics.background(function, async move {
        let started = std::time::Instant::now();
        match work.await {
            Ok(()) => tracing::debug!(
                function = function.name(),
                part,
                duration_ms = started.elapsed().as_millis() as u64,
                "start-up prefetch done"
            ),
            Err(e) => tracing::warn!(
                function = function.name(),
                part,
                error = %e,
                "start-up prefetch failed; the first request does it itself"
            ),
        }
    }));
}
