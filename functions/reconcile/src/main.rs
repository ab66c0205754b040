//! The `reconcile` Lambda, run by a schedule: see `shared::handlers::reconcile`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::run_scheduled(
        shared::metrics::Function::Reconcile,
        shared::handlers::reconcile,
    )
    .await
}
