//! The reference for init time, memory and size: the hello-world function of
//! `cargo lambda new` (tracing set up, then `lambda_runtime::run` on the
//! multi-thread runtime `#[tokio::main]` starts), built with the workspace's
//! release profile and nothing but `lambda_runtime`, tokio and serde_json
//! (scripts/bench.sh builds it with `--features hello` alone).

use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(connect_benches::hello::hello)).await
}
