//! What every function's `main` does: set up tracing, build the clients once,
//! and hand the handler to the Lambda runtime.

use std::convert::Infallible;
use std::future::Future;

use lambda_http::{Body, Request, RequestExt, Response, service_fn};

use crate::app::App;

pub async fn run<F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static App, Request) -> Fut,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    lambda_http::tracing::init_default_subscriber();
    let app = App::from_env().await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?;
    // The process lives as long as the container; leaking gives handlers a
    // plain `&App` without reference counting on every request.
    let app: &'static App = Box::leak(Box::new(app));
    lambda_http::run(service_fn(move |request: Request| {
        let end = request
            .lambda_context_ref()
            .map_or(0, |context| context.deadline);
        let response =
            crate::deadline::within(crate::deadline::invocation_end(end), handler(app, request));
        async move { Ok::<_, Infallible>(response.await) }
    }))
    .await
}
