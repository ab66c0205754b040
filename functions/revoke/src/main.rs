//! The `revoke` Lambda: see `shared::handlers::revoke`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::metrics::Function::Revoke, shared::handlers::revoke).await
}
