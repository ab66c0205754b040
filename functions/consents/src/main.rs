//! The `consents` Lambda: see `shared::handlers::consents`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(
        shared::metrics::Function::Consents,
        shared::handlers::consents,
    )
    .await
}
