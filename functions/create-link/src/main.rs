//! The `create-link` Lambda: see `shared::handlers::create_link`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(
        shared::metrics::Function::CreateLink,
        shared::handlers::create_link,
    )
    .await
}
