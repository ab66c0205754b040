//! The hello-world handler of `cargo lambda new`, shared by the two
//! reference binaries: `bench-hello` (its multi-thread runtime, as
//! `cargo lambda new` writes it) and `bench-hello-current-thread` (the
//! `current_thread` runtime our functions use).

use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};

pub async fn hello(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let path = event.payload["rawPath"].as_str().unwrap_or("/").to_owned();
    Ok(json!({
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json!({"message": "hello", "path": path}).to_string(),
        "isBase64Encoded": false,
    }))
}
