//! The `webhook` Lambda: see `shared::handlers::webhook`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(
        shared::metrics::Function::Webhook,
        shared::handlers::webhook,
    )
    .await
}
