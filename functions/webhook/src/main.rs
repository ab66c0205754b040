//! The `webhook` Lambda: see `shared::handlers::webhook`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(
        shared::metrics::Function::Webhook,
        shared::handlers::webhook,
    )
    .await
}
