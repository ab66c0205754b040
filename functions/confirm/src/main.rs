//! The `confirm` Lambda: see `shared::handlers::confirm`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(
        shared::metrics::Function::Confirm,
        shared::handlers::confirm,
    )
    .await
}
