//! The start-up prefetch: what a cold start's first request would do one
//! step after another (fetch the secret, open a TLS connection to DynamoDB,
//! open one to Finexer) is started in the background as soon as the clients
//! are built, and never awaited before the first `GET /next`. Under the
//! `current_thread` runtime the tasks run while the runtime waits for the
//! first event, and keep running beside the first request.
//!
//! The first request joins what is in flight rather than starting it again:
//! - the secret: [`crate::secrets::SecretsManagerSource`] holds its cache's
//!   lock for the whole fetch, so a request that asks meanwhile waits for
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

/// What a function's first request needs besides its DynamoDB connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// The secret, and a connection to Finexer (every Finexer call needs
    /// the API key from the secret).
    pub finexer: bool,
    /// The secret for its own sake (state keys, webhook secrets).
    pub secret: bool,
}

impl Needs {
    /// What `function`'s usual first request uses. confirm and consents
    /// call Finexer only on their rarer routes (a renewal; an expired
    /// unconfirmed consent; account data, when that is enabled), so they
    /// prefetch the store connection alone, unless account data is on.
    pub fn of(function: Function, app: &App) -> Needs {
        match function {
            Function::CreateLink
            | Function::Callback
            | Function::Revoke
            | Function::Webhook
            | Function::Reconcile => Needs {
                finexer: true,
                secret: true,
            },
            Function::Consents if app.config.account_data_enabled => Needs {
                finexer: true,
                secret: true,
            },
            Function::Confirm | Function::Consents => Needs {
                finexer: false,
                secret: false,
            },
        }
    }
}

/// Spawns the prefetch for `function` on the current runtime, unless the
/// configuration turns it off. Returns at once.
pub fn start(app: &'static App, function: Function) {
    if !app.config.startup_prefetch {
        return;
    }
    let needs = Needs::of(function, app);
    spawn("dynamodb", async move { app.store.warm_up().await });
    if needs.secret {
        spawn(
            "secret",
            async move { app.secrets.secrets().await.map(drop) },
        );
    }
    if needs.finexer {
        spawn("finexer", async move { app.finexer.warm_up().await });
    }
}

fn spawn<F>(part: &'static str, work: F)
where
    F: std::future::Future<Output = crate::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match work.await {
            Ok(()) => tracing::debug!(
                part,
                duration_ms = started.elapsed().as_millis() as u64,
                "start-up prefetch done"
            ),
            Err(e) => tracing::warn!(
                part,
                error = %e,
                "start-up prefetch failed; the first request does it itself"
            ),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finexer_callers_prefetch_the_secret_and_finexer() {
        let config = crate::config::Config::from_lookup(|name| {
            match name {
                "CONSENT_TABLE" => Some("t"),
                "CONNECT_SECRET_ID" => Some("s"),
                "CALLBACK_URL" => Some("https://api.example.com/callback"),
                "FRONTEND_URLS" => Some("https://app.example.com/"),
                _ => None,
            }
            .map(str::to_owned)
        })
        .unwrap();
        let secrets: std::sync::Arc<dyn crate::secrets::SecretSource> = std::sync::Arc::new(
            crate::secrets::StaticSecrets(std::sync::Arc::new(
                crate::secrets::AppSecrets::parse(
                    r#"{"finexer_api_key":"k","state_keys":[{"kid":"a","key":"0123456789abcdef0123456789abcdef"}]}"#,
                )
                .unwrap(),
            )),
        );
        let store = std::sync::Arc::new(crate::store::memory::MemoryStore::default());
        let mut app = App::new(config, store, secrets).unwrap();
        let all = Needs {
            finexer: true,
            secret: true,
        };
        let store_only = Needs {
            finexer: false,
            secret: false,
        };
        assert_eq!(Needs::of(Function::CreateLink, &app), all);
        assert_eq!(Needs::of(Function::Callback, &app), all);
        assert_eq!(Needs::of(Function::Consents, &app), store_only);
        assert_eq!(Needs::of(Function::Confirm, &app), store_only);
        app.config.account_data_enabled = true;
        assert_eq!(Needs::of(Function::Consents, &app), all);
    }
}
