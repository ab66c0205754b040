//! The reference for init time, memory and size: the hello-world function of
//! `cargo lambda new` (tracing set up, then `lambda_runtime::run`), built with
//! the workspace's release profile and nothing but `lambda_runtime`, tokio and
//! serde_json (scripts/bench.sh builds it with `--features hello` alone).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn hello(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let path = event.payload["rawPath"].as_str().unwrap_or("/").to_owned();
    Ok(json!({
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json!({"message": "hello", "path": path}).to_string(),
        "isBase64Encoded": false,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(hello)).await
}
