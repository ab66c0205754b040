//! `finexer-sandbox`: runs the sandbox until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use finexer_sandbox::{SandboxConfig, start};

const DEFAULT_ADDR: &str = "127.0.0.1:3001";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("finexer-sandbox: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let config = config_from_env()?;
    let stopped = stop_signal()?;
    let bind = config.bind;
    let sandbox = start(config).await.map_err(|error| match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("cannot listen on {bind}: the address is already in use (set SANDBOX_ADDR to another port)")
        }
        _ => format!("cannot start on {bind}: {error}"),
    })?;
    say(&format!(
        "Finexer sandbox listening on {}",
        sandbox.base_url()
    ));
    say(&format!(
        "Consent pages at {}/connect/<consent id>",
        sandbox.public_base_url()
    ));
    stopped.await;
    say("Stopping Finexer sandbox");
    sandbox.shutdown().await;
    Ok(())
}

/// Prints a status line; a closed stdout (e.g. a finished pipe) is not worth dying for.
fn say(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

fn config_from_env() -> Result<SandboxConfig, String> {
    let defaults = SandboxConfig::default();
    let text = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let number = |name: &str| -> Result<u64, String> {
        text(name)
            .map(|value| {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{name}={value:?} is not a whole number of milliseconds"))
            })
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let addr = text("SANDBOX_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let bind: SocketAddr = addr
        .parse()
        .map_err(|_| format!("SANDBOX_ADDR={addr:?} is not an address like {DEFAULT_ADDR}"))?;
    Ok(SandboxConfig {
        api_key: text("SANDBOX_API_KEY").unwrap_or(defaults.api_key),
        bind,
        public_base_url: text("SANDBOX_PUBLIC_URL"),
        webhook_url: text("SANDBOX_WEBHOOK_URL"),
        webhook_secret: text("SANDBOX_WEBHOOK_SECRET").unwrap_or_default(),
        latency_ms: number("SANDBOX_LATENCY_MS")?,
        accounts_delay_ms: number("SANDBOX_ACCOUNTS_DELAY_MS")?,
        faults: Vec::new(),
    })
}

/// Registers for Ctrl-C and SIGTERM at once (before the URL is printed, so a
/// supervisor that signals right after reading it is not lost) and resolves on either.
#[cfg(unix)]
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind| {
        signal(kind).map_err(|error| format!("cannot listen for signals: {error}"))
    };
    let mut interrupt = listen(SignalKind::interrupt())?;
    let mut terminate = listen(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
