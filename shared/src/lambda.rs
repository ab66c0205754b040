//! What every function's `main` does: set up tracing, build the clients once,
//! and hand the handler to the Lambda runtime.
//!
//! No request can end the process. `lambda_http::run` converts the event
//! inside lambda_http, which panics on some events (see [`crate::event`]),
//! and a panic under the release profile would end the process: Lambda
//! answers `Runtime.ExitError` and starts a new sandbox. So the runtime loop
//! here is lambda_runtime's over the raw JSON event: the payload is repaired
//! into valid UTF-8 JSON, sanitised, and only then converted by lambda_http's
//! own adapter (the one `lambda_http::run` uses: same `http::Request`, same
//! extensions and Lambda context, same API Gateway v2 response JSON). An event
//! that cannot be repaired is answered 400. A panic in a handler is caught and
//! answered 500 for that request only (the release profile unwinds; see
//! `benches/RESULTS.md` for what that costs).
//!
//! Each invocation runs in [`observed`]: its metrics name the function
//! ([`crate::metrics`]), and it ends with one log line (request id,
//! function, route template, status, consent id when known, duration).

use std::any::Any;
use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::Poll;

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::lambda_runtime::layers::TracingLayer;
use lambda_http::lambda_runtime::{LambdaInvocation, Runtime};
use lambda_http::request::LambdaRequest;
use lambda_http::tower::util::MapRequestLayer;
use lambda_http::tracing::subscriber;
use lambda_http::{
    Adapter, Body, Context, LambdaEvent, Request, RequestExt, Response, Service, TransformResponse,
    service_fn,
};
use serde::Serialize;
use serde_json::Value;

use crate::app::App;
use crate::error::Error;
use crate::event::{self, Refusal};
use crate::metrics::Function;

/// Runs one HTTP invocation of `function` through `handler`: in the
/// function's metrics scope, a panic answered 500, and ended by the
/// invocation's log line. Never the path's ids, the query, a header or the
/// body: the route template and the consent id the handler noted.
pub async fn observed<H, Fut>(
    app: &App,
    function: Function,
    request: Request,
    handler: H,
) -> Response<Body>
where
    H: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let started = std::time::Instant::now();
    let request_id = request_id(&request);
    let route = route_of(&request);
    let (response, consent_id) = app
        .metrics
        .scope(function, async move {
            // Boxed: the wrappers then hold a pointer, not the handler's
            // (large) future, so they add almost nothing to the stack.
            let response = catch_panic(async move { Box::pin(handler(request)).await }).await;
            (response, crate::metrics::noted_consent())
        })
        .await;
    tracing::info!(
        request_id = request_id.as_str(),
        function = function.name(),
        route,
        status = response.status().as_u16(),
        consent_id = consent_id.as_deref(),
        duration_ms = started.elapsed().as_millis() as u64,
        "invocation finished"
    );
    response
}

/// Lambda's request id; the API Gateway request id where there is no
/// Lambda context (the local stack).
fn request_id(request: &Request) -> String {
    if let Some(context) = request.lambda_context_ref()
        && !context.request_id.is_empty()
    {
        return context.request_id.clone();
    }
    match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => {
            context.request_id.clone().unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// The request's route template (`POST /consents/{id}/revoke`), never its
/// raw path: API Gateway's route key when it names one of ours, otherwise
/// the route whose template the method and path match, otherwise `other`.
fn route_of(request: &Request) -> &'static str {
    crate::routes::Route::of_request(request)
        .or_else(|| {
            crate::routes::Route::find(request.method().as_str(), request.uri().path())
                .map(|(route, _)| route)
        })
        .map_or("other", |route| route.key)
}

/// Our crate's log target. Only its events may be below INFO.
const OWN_TARGET: &str = "shared";

/// The log subscriber: lambda_runtime's default (level from
/// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; directives from
/// `RUST_LOG`; JSON when `AWS_LAMBDA_LOG_FORMAT` is `JSON`), with every other
/// crate held at INFO whatever those say. Below INFO, lambda_runtime logs
/// each raw event (bearer tokens, the `state`, confirmation codes, webhook
/// bodies) and the AWS SDK each request and response (signed headers, the
/// secret's value). The cap is a filter of its own, so no directive in
/// `RUST_LOG` can lift it. (reqwest and hyper log through `log` or a
/// compile-time flag, neither of which reaches this subscriber.)
pub fn init_tracing() {
    init_tracing_with_writer(std::io::stdout);
}

/// [`init_tracing`] writing to `writer`.
pub fn init_tracing_with_writer<W>(writer: W)
where
    W: for<'w> subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use subscriber::filter::{EnvFilter, LevelFilter, Targets};
    use subscriber::layer::SubscriberExt;
    use subscriber::util::SubscriberInitExt;
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| level.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let requested = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let capped = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target(OWN_TARGET, LevelFilter::TRACE);
    let format = subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(writer);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let registry = subscriber::registry().with(requested).with(capped);
    // A second subscriber (tests that call this twice) is not an error.
    let _ = if json {
        registry.with(format.json()).try_init()
    } else {
        registry.with(format).try_init()
    };
}

pub async fn run<F, Fut>(function: Function, handler: F) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static App, Request) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    init_tracing();
    let app = App::from_env().await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?;
    // The process lives as long as the container; leaking gives handlers a
    // plain `&App` without reference counting on every request.
    let app: &'static App = Box::leak(Box::new(app));
    let observed_handler = move |app: &'static App, request: Request| {
        observed(app, function, request, move |request| handler(app, request))
    };
    Runtime::new(service(app, observed_handler))
        .layer(MapRequestLayer::new(repair_invocation))
        .layer(TracingLayer::new())
        .run()
        .await
}

/// [`run`] for a function started by a schedule, not by HTTP: `handler`
/// gets the event's payload and the invocation's time budget; an error or
/// a panic fails the invocation, so the scheduler's retry policy and
/// dead-letter queue take over.
pub async fn run_scheduled<F, Fut, In, Out>(
    function: Function,
    handler: F,
) -> Result<(), lambda_http::Error>
where
    F: Fn(&'static App, In) -> Fut + 'static,
    Fut: Future<Output = crate::Result<Out>> + Send + 'static,
    In: serde::de::DeserializeOwned + Default,
    Out: Serialize,
{
    init_tracing();
    let app = App::from_env().await.map_err(|e| {
        tracing::error!(error = %e, "start-up failed");
        e
    })?;
    let app: &'static App = Box::leak(Box::new(app));
    let handler = &*Box::leak(Box::new(handler));
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Whatever the schedule sends, an unreadable input means "defaults".
        let input = serde_json::from_value(event.payload).unwrap_or_default();
        let end = crate::deadline::invocation_end(event.context.deadline);
        let started = std::time::Instant::now();
        let run = crate::deadline::within(
            end,
            app.metrics.scope(function, Box::pin(handler(app, input))),
        );
        let outcome = futures_util::FutureExt::catch_unwind(AssertUnwindSafe(run)).await;
        tracing::info!(
            request_id = %event.context.request_id,
            function = function.name(),
            route = "schedule",
            status = if matches!(outcome, Ok(Ok(_))) { 200 } else { 500 },
            duration_ms = started.elapsed().as_millis() as u64,
            "invocation finished"
        );
        match outcome {
            Ok(result) => result.map_err(|e| {
                tracing::error!(error = %e, "scheduled run failed");
                lambda_http::Error::from(e)
            }),
            Err(payload) => {
                tracing::error!(
                    panic = panic_text(payload.as_ref()),
                    "scheduled run panicked"
                );
                Err(lambda_http::Error::from("the scheduled run panicked"))
            }
        }
    }))
    .await
}

/// Makes the raw payload valid UTF-8 JSON before the runtime reads it (it
/// would otherwise answer the invocation with an error, not an HTTP response).
fn repair_invocation(mut invocation: LambdaInvocation) -> LambdaInvocation {
    if let Cow::Owned(repaired) = event::repair_json(&invocation.body) {
        tracing::warn!("the event was not valid UTF-8 JSON; replaced what was not");
        invocation.body = repaired.into();
    }
    invocation
}

type Answer = TransformResponse<'static, Response<Body>, Infallible>;

/// What the runtime calls with each event: sanitise, convert with
/// lambda_http, run `handler` with `state`, answer in lambda_http's format.
pub fn service<S, F, Fut>(
    state: &'static S,
    handler: F,
) -> impl Service<LambdaEvent<Value>, Response = impl Serialize, Error = Infallible>
where
    S: Sync + ?Sized,
    F: Fn(&'static S, Request) -> Fut + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let mut serve = Adapter::from(service_fn(move |request: Request| {
        // The request's time budget ends with the invocation (crate::deadline).
        let end = request
            .lambda_context_ref()
            .map_or(0, |context| context.deadline);
        let response = std::panic::catch_unwind(AssertUnwindSafe(|| {
            crate::deadline::within(
                crate::deadline::invocation_end(end),
                handler(state, request),
            )
        }));
        async move {
            Ok::<_, Infallible>(match response {
                Ok(response) => catch_panic(response).await,
                Err(payload) => panic_response(payload.as_ref()),
            })
        }
    }));
    service_fn(move |event: LambdaEvent<Value>| {
        let LambdaEvent { payload, context } = event;
        let request = match event::into_lambda_request(payload) {
            Ok(request) => request,
            Err(refusal) => return refuse(refusal, context),
        };
        // Sanitising makes lambda_http's conversion panic-free; should it
        // still panic, this request alone is refused.
        let fallback = context.clone();
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            serve.call(LambdaEvent::new(request, context))
        }))
        .unwrap_or_else(|payload| {
            tracing::error!(
                panic = panic_text(payload.as_ref()),
                "converting the event panicked"
            );
            refuse(Refusal::NotAnEvent, fallback)
        })
    })
}

/// A 400 problem, in lambda_http's response format, without calling the handler.
fn refuse(refusal: Refusal, context: Context) -> Answer {
    let detail = refusal.detail();
    let mut answer = Adapter::from(service_fn(move |_: Request| {
        std::future::ready(Ok::<_, Infallible>(
            Error::BadRequest(detail.into()).into_problem_response(),
        ))
    }));
    // An empty event converts without fail; it only selects the format.
    let empty = LambdaRequest::ApiGatewayV2(ApiGatewayV2httpRequest::default());
    answer.call(LambdaEvent::new(empty, context))
}

/// Runs `future`; a panic while polling it becomes a 500 problem.
async fn catch_panic<Fut>(future: Fut) -> Response<Body>
where
    Fut: Future<Output = Response<Body>>,
{
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(move |cx| {
        std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)))
            .unwrap_or_else(|payload| Poll::Ready(panic_response(payload.as_ref())))
    })
    .await
}

fn panic_response(payload: &(dyn Any + Send)) -> Response<Body> {
    tracing::error!(panic = panic_text(payload), "the handler panicked");
    Error::Internal("the handler panicked".into()).into_problem_response()
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::RequestExt;
    use serde_json::json;

    /// Echoes the decoded query and the path; panics when asked to.
    async fn echo(_: &(), request: Request) -> Response<Body> {
        let query = request.uri().query().unwrap_or_default().to_owned();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if pairs.iter().any(|(k, _)| k == "panic") {
            panic!("asked to panic");
        }
        let body = json!({
            "path": request.uri().path(),
            "query": pairs,
            "request_id": request.lambda_context().request_id,
        });
        crate::http::json_response(200, &body).unwrap()
    }

    fn event(query: &str) -> Value {
        json!({
            "version": "2.0",
            "rawPath": "/callback",
            "rawQueryString": query,
            "headers": {"host": "api.example.com"},
            "requestContext": {"http": {"method": "GET", "path": "/callback"}, "stage": "$default"},
            "isBase64Encoded": false
        })
    }

    async fn call(
        service: &mut impl Service<LambdaEvent<Value>, Response = impl Serialize, Error = Infallible>,
        event: Value,
    ) -> Value {
        let mut context = Context::default();
        context.request_id = "req-1".into();
        let Ok(answer) = service.call(LambdaEvent::new(event, context)).await;
        serde_json::to_value(answer).unwrap()
    }

    fn body(answer: &Value) -> Value {
        serde_json::from_str(answer["body"].as_str().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_panic_is_a_500_for_that_request_only() {
        let mut service = service(&(), echo);
        let answer = call(&mut service, event("panic=1")).await;
        assert_eq!(answer["statusCode"], 500);
        assert_eq!(
            answer["headers"]["content-type"],
            "application/problem+json"
        );
        assert_eq!(body(&answer)["type"], "/problems/internal");

        let answer = call(&mut service, event("state=a%20b&x=a b\"<>")).await;
        assert_eq!(answer["statusCode"], 200, "{answer}");
        assert_eq!(
            body(&answer),
            json!({"path": "/callback", "query": [["state", "a b"], ["x", "a b\"<>"]],
                   "request_id": "req-1"})
        );
    }

    #[tokio::test]
    async fn unreadable_events_are_400() {
        let mut service = service(&(), echo);
        let mut bad_body = event("");
        bad_body["isBase64Encoded"] = true.into();
        bad_body["body"] = "%%%".into();
        for event in [bad_body, json!([]), json!({"requestContext": 5})] {
            let answer = call(&mut service, event).await;
            assert_eq!(answer["statusCode"], 400, "{answer}");
            assert_eq!(body(&answer)["type"], "/problems/bad-request");
        }
    }

    #[test]
    fn the_raw_payload_is_repaired() {
        let invocation = |body: &'static [u8]| LambdaInvocation {
            parts: http::Response::new(()).into_parts().0,
            body: bytes::Bytes::from_static(body),
            context: Context::default(),
        };
        let fixed = repair_invocation(invocation(b"{\"a\":\"\xff\"}"));
        assert_eq!(&fixed.body[..], "{\"a\":\"\u{fffd}\"}".as_bytes());
        let fine = repair_invocation(invocation(b"{\"a\":1}"));
        assert_eq!(&fine.body[..], b"{\"a\":1}");
    }
}
