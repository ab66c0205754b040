//! The `callback` Lambda: see `shared::handlers::callback`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(shared::handlers::callback).await
}
