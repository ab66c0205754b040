//! Transport: form-encoded bodies, JSON answers, no bare `?`, unknown URLs.

use std::io::{Read, Write};
use std::net::TcpStream;

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use crate::helpers::{API_KEY, TestSandbox, error_code, json_of};

#[tokio::test]
async fn arrays_and_maps_are_read_from_form_bodies() {
    let sandbox = TestSandbox::start().await;
    let customer = sandbox.create_customer().await;
    let (status, consent) = sandbox
        .post_json_answer(
            "/consents",
            &[
                ("customer", customer.as_str()),
                ("return_url", "https://app.example/cb"),
                ("scopes[]", "accounts"),
                ("scopes[]", "transactions"),
                ("metadata[order_id]", "A-17"),
                ("metadata[note]", "a&b=c"),
                ("retro_date", "2024-01-31"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{consent}");
    assert_eq!(consent["scopes"], json!(["accounts", "transactions"]));
    assert_eq!(
        consent["metadata"],
        json!({"order_id": "A-17", "note": "a&b=c"})
    );
    assert_eq!(consent["retro_date"], "2024-01-31");
}

#[tokio::test]
async fn customer_fields_are_read_and_returned() {
    let sandbox = TestSandbox::start().await;
    let (status, customer) = sandbox
        .post_json_answer(
            "/customers",
            &[
                ("name", "Grace Hopper"),
                ("email", "grace@example.com"),
                ("phone", "+447700900123"),
                ("currency", "gbp"),
                ("metadata[crm]", "42"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = customer["id"].as_str().unwrap();
    assert!(id.starts_with("cus_") && id.len() == 20, "{id}");
    assert_eq!(customer["object"], "customer");
    assert_eq!(customer["currency"], "GBP");
    assert_eq!(customer["phone"], "+447700900123");
    assert_eq!(customer["metadata"]["crm"], "42");

    let (status, body) = sandbox
        .post_json_answer("/customers", &[("name", "No Email")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "parameter_missing");
}

#[tokio::test]
async fn json_bodies_are_rejected_with_400() {
    let sandbox = TestSandbox::start().await;
    let response = sandbox
        .client
        .post(sandbox.url("/customers"))
        .basic_auth(API_KEY, Some(""))
        .json(&json!({"name": "Ada", "email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_code(&body, "request_error"),
        "unsupported_content_type"
    );

    // JSON sent under a form content type is read as one unknown parameter.
    let response = sandbox
        .client
        .post(sandbox.url("/customers"))
        .basic_auth(API_KEY, Some(""))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(r#"{"name":"Ada"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unbracketed_arrays_and_unknown_parameters_are_400() {
    let sandbox = TestSandbox::start().await;
    let customer = sandbox.create_customer().await;
    let (status, body) = sandbox
        .post_json_answer(
            "/consents",
            &[("customer", customer.as_str()), ("scopes", "accounts")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "parameter_unknown");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scopes")
    );

    let (status, body) = sandbox
        .post_json_answer(
            "/consents",
            &[("customer", customer.as_str()), ("scopes[]", "payments")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "parameter_invalid");

    let (status, body) = sandbox.get_json("/providers?colour=blue").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "parameter_unknown");
}

/// Sends a raw request line, since HTTP clients may tidy a trailing `?` away.
fn raw_status(addr: std::net::SocketAddr, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{API_KEY}:"));
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {credentials}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[tokio::test]
async fn a_url_ending_in_a_bare_question_mark_is_400() {
    let sandbox = TestSandbox::start().await;
    let addr = sandbox.sandbox.addr();
    let (status, body) = tokio::task::spawn_blocking(move || raw_status(addr, "/providers?"))
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("empty_query_string"), "{body}");
    let (status, _) = tokio::task::spawn_blocking(move || raw_status(addr, "/providers"))
        .await
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_urls_and_methods_answer_in_the_error_shape() {
    let sandbox = TestSandbox::start().await;
    let (status, body) = sandbox.get_json("/payments").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body, "request_error"), "unknown_url");

    // Finexer has no DELETE /consents/{id}; revoke is a POST.
    let response = sandbox
        .client
        .delete(sandbox.url("/consents/bc_x"))
        .basic_auth(API_KEY, Some(""))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&body, "request_error"), "method_not_allowed");
}
