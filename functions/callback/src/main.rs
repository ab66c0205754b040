//! The `callback` Lambda: see `shared::handlers::callback`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run(
        shared::metrics::Function::Callback,
        shared::handlers::callback,
    )
    .await
}
