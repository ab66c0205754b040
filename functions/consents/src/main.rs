//! The `consents` Lambda: see `shared::handlers::consents`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(
        shared::metrics::Function::Consents,
        shared::handlers::consents,
    )
    .await
}
