//! `connect-local`: run the whole system on this machine (`make dev`).

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let stack = match connect_local::LocalConfig::from_env() {
        Ok(config) => connect_local::start(config).await,
        Err(e) => Err(e),
    };
    let stack = match stack {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("connect-local: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("Demo frontend: {}/", stack.demo_url);
    println!("API: {}", stack.base_url);
    if let Some(sandbox) = &stack.sandbox {
        println!("Finexer sandbox: {}", sandbox.base_url());
    }
    println!();
    println!(
        "Open {}/ in your browser: the demo is on another site than the API on \
         purpose, as a platform's frontend is. Ctrl-C stops everything.",
        stack.demo_url
    );
    wait_for_stop().await;
    println!("Stopping.");
    stack.shutdown().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_for_stop() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
