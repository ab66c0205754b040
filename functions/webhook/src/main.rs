//! The `webhook` Lambda: see `shared::handlers::webhook`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::handlers::webhook).await
}
