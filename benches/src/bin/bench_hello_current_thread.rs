//! `bench-hello` on the `current_thread` runtime our functions use, so that
//! init compares like with like (the runtime's worker threads are part of
//! the multi-thread one's start-up).

use lambda_runtime::{Error, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(connect_benches::hello::hello)).await
}
