//! API Gateway HTTP API (payload 2.0) events, shaped like the samples in
//! `events/`: what API Gateway hands each function.

use serde_json::{Value, json};

/// A user as the JWT authorizer passes them on.
pub struct User<'a> {
    pub sub: &'a str,
    pub email: &'a str,
    pub name: &'a str,
}

/// One event. `user` = None means no authorizer context (the public callback).
pub fn event(
    method: &str,
    path: &str,
    query: &str,
    user: Option<&User<'_>>,
    body: Option<&str>,
    request_id: &str,
) -> Value {
    let route = format!("{method} {path}");
    let mut context = json!({
        "accountId": "123456789012",
        "apiId": "api",
        "domainName": "api.example.com",
        "domainPrefix": "api",
        "requestId": request_id,
        "routeKey": route,
        "stage": "$default",
        "time": "25/Nov/2026:10:00:00 +0000",
        "timeEpoch": 1_795_600_000_000u64,
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "192.0.2.1",
            "userAgent": "Mozilla/5.0"
        }
    });
    if let Some(user) = user {
        context["authorizer"] = json!({"jwt": {"claims": {
            "sub": user.sub,
            "email": user.email,
            "name": user.name,
            "iss": "https://auth.example.com/",
            "aud": "connect"
        }, "scopes": null}});
    }
    let mut headers = json!({"host": "api.example.com", "user-agent": "Mozilla/5.0"});
    if body.is_some() {
        headers["content-type"] = "application/json".into();
    }
    json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": false
    })
}

/// `POST /links` with an empty JSON object: the default return target.
pub fn create_link(user: &User<'_>, request_id: &str) -> Value {
    event("POST", "/links", "", Some(user), Some("{}"), request_id)
}

/// `GET /callback?fx_consent=..&state=..`, as the bank sends the browser back.
pub fn callback(consent_id: &str, state: &str, request_id: &str) -> Value {
    let query: String = url_encode(&[("fx_consent", consent_id), ("state", state)]);
    event("GET", "/callback", &query, None, None, request_id)
}

/// `POST /consents/{id}/revoke`.
pub fn revoke(user: &User<'_>, consent_id: &str, request_id: &str) -> Value {
    let path = format!("/consents/{consent_id}/revoke");
    event("POST", &path, "", Some(user), None, request_id)
}

/// `GET /consents`: the user's consents.
pub fn list_consents(user: &User<'_>, request_id: &str) -> Value {
    event("GET", "/consents", "", Some(user), None, request_id)
}

fn url_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_query_is_encoded() {
        let e = callback("bc_1", "a.b+c/d", "r1");
        assert_eq!(e["rawQueryString"], "fx_consent=bc_1&state=a.b%2Bc%2Fd");
        assert!(e["requestContext"].get("authorizer").is_none());
    }

    #[test]
    fn authorized_events_carry_the_claims() {
        let user = User {
            sub: "u1",
            email: "u1@example.com",
            name: "U",
        };
        let e = create_link(&user, "r2");
        assert_eq!(
            e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"],
            "u1"
        );
        assert_eq!(e["headers"]["content-type"], "application/json");
        assert_eq!(
            revoke(&user, "bc_9", "r3")["rawPath"],
            "/consents/bc_9/revoke"
        );
    }
}
