//! API Gateway HTTP API (payload 2.0) events, built on `aws_lambda_events`'
//! types: what API Gateway hands a function.
//!
//! ```ignore
//! let request = Event::post("/links").user("u1").json(&json!({})).request();
//! let bytes = Event::get("/callback?fx_consent=bc_1&state=s").to_bytes();
//! ```
//!
//! As API Gateway does: the query string stays raw (`rawQueryString`, never
//! decoded), cookies travel in `cookies` rather than a `Cookie` header, a
//! binary body is base64 with `isBase64Encoded`, `routeKey` and
//! `pathParameters` come from the route table (`$default` and none off it),
//! and the JWT authorizer's claims are there when a user is given.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
};
use lambda_http::http::{HeaderName, HeaderValue, Method};
use serde_json::Value;

use crate::routes;

/// The fixed request time every built event carries.
pub const TIME: &str = "25/Nov/2026:10:00:00 +0000";
pub const TIME_EPOCH_MS: i64 = 1_795_600_000_000;
pub const HOST: &str = "api.example.com";
pub const USER_AGENT: &str = "Mozilla/5.0";
/// The JWT authorizer's issuer and audience, as in `events/`.
pub const ISSUER: &str = "https://auth.example.com/";
pub const AUDIENCE: &str = "connect";

/// A user as the JWT authorizer passes them on (its claims).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User<'a> {
    pub sub: &'a str,
    pub email: &'a str,
    pub name: &'a str,
}

/// What a body is: text as sent, or bytes that travel base64-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EventBody {
    Text(String),
    Binary(Vec<u8>),
}

/// One event, built step by step; see the module's documentation.
#[derive(Debug, Clone)]
#[must_use]
pub struct Event {
    method: Method,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    cookies: Vec<String>,
    body: Option<EventBody>,
    claims: Option<HashMap<String, String>>,
    request_id: String,
}

impl Event {
    /// `method` `path`; a `?` in `path` starts the raw query string.
    pub fn new(method: &str, path: &str) -> Event {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Event {
            method: Method::from_bytes(method.as_bytes()).expect("an HTTP method"),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: vec![
                ("host".into(), HOST.into()),
                ("user-agent".into(), USER_AGENT.into()),
            ],
            cookies: Vec::new(),
            body: None,
            claims: None,
            request_id: "req".into(),
        }
    }

    pub fn get(path: &str) -> Event {
        Event::new("GET", path)
    }

    pub fn post(path: &str) -> Event {
        Event::new("POST", path)
    }

    /// The raw query string, exactly as the client sent it.
    pub fn query(mut self, raw: &str) -> Event {
        self.query = raw.to_owned();
        self
    }

    /// A query string of `pairs`, form-urlencoded as a browser sends them.
    pub fn query_pairs(self, pairs: &[(&str, &str)]) -> Event {
        let raw = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.query(&raw)
    }

    /// Sets a header (replacing one of the same name; names are lowercase,
    /// as API Gateway passes them).
    pub fn header(mut self, name: &str, value: &str) -> Event {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }

    /// A cookie (`name=value`), in the event's `cookies`.
    pub fn cookie(mut self, cookie: &str) -> Event {
        self.cookies.push(cookie.to_owned());
        self
    }

    /// The authorizer's claims for a user `sub`, with an email and a name
    /// made from it.
    pub fn user(self, sub: &str) -> Event {
        let email = format!("{sub}@example.com");
        let name = format!("User {sub}");
        self.claims_of(User {
            sub,
            email: &email,
            name: &name,
        })
    }

    /// The authorizer's claims for `user`, with the issuer and audience.
    pub fn claims_of(self, user: User<'_>) -> Event {
        let claims = [
            ("sub", user.sub),
            ("email", user.email),
            ("name", user.name),
            ("iss", ISSUER),
            ("aud", AUDIENCE),
        ];
        self.claims(
            claims
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// Exactly these claims (what a JWT authorizer passed on).
    pub fn claims(mut self, claims: HashMap<String, String>) -> Event {
        self.claims = Some(claims);
        self
    }

    /// A JSON body, with `content-type: application/json`.
    pub fn json(self, body: &Value) -> Event {
        self.header("content-type", "application/json")
            .text(&body.to_string())
    }

    /// A text body as sent (no content type added).
    pub fn text(mut self, body: &str) -> Event {
        self.body = Some(EventBody::Text(body.to_owned()));
        self
    }

    /// A binary body: base64 in the event, `isBase64Encoded` true.
    pub fn bytes(mut self, body: &[u8]) -> Event {
        self.body = Some(EventBody::Binary(body.to_vec()));
        self
    }

    /// Any body as API Gateway passes it: text when it is UTF-8, otherwise
    /// base64 (an empty one is no body).
    pub fn body(self, body: &[u8]) -> Event {
        match std::str::from_utf8(body) {
            _ if body.is_empty() => self,
            Ok(text) => self.text(text),
            Err(_) => self.bytes(body),
        }
    }

    pub fn request_id(mut self, id: &str) -> Event {
        self.request_id = id.to_owned();
        self
    }

    /// The event as `aws_lambda_events`' type, for changing what the builder
    /// does not cover.
    pub fn build(&self) -> ApiGatewayV2httpRequest {
        let route = routes::lookup(self.method.as_str(), &self.path);
        let route_key = route
            .as_ref()
            .map_or_else(|| "$default".to_owned(), |r| r.key.clone());

        let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
        http.method = self.method.clone();
        http.path = Some(self.path.clone());
        http.protocol = Some("HTTP/1.1".into());
        http.source_ip = Some("192.0.2.1".into());
        http.user_agent = self
            .headers
            .iter()
            .find(|(n, _)| n == "user-agent")
            .map(|(_, v)| v.clone());

        let mut context = ApiGatewayV2httpRequestContext::default();
        context.route_key = Some(route_key.clone());
        context.account_id = Some("123456789012".into());
        context.stage = Some("$default".into());
        context.request_id = Some(self.request_id.clone());
        context.apiid = Some("api".into());
        context.domain_name = Some(HOST.into());
        context.domain_prefix = Some("api".into());
        context.time = Some(TIME.into());
        context.time_epoch = TIME_EPOCH_MS;
        context.http = http;
        context.authorizer = self.claims.clone().map(|claims| {
            let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
            jwt.claims = claims;
            let mut authorizer = ApiGatewayRequestAuthorizer::default();
            authorizer.jwt = Some(jwt);
            authorizer
        });

        let mut event = ApiGatewayV2httpRequest::default();
        event.version = Some("2.0".into());
        event.route_key = Some(route_key);
        event.raw_path = Some(self.path.clone());
        event.raw_query_string = Some(self.query.clone());
        event.cookies = (!self.cookies.is_empty()).then(|| self.cookies.clone());
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            let value = HeaderValue::from_str(value).expect("a header value");
            event.headers.insert(name, value);
        }
        event.path_parameters = route.map(|r| r.path_parameters).unwrap_or_default();
        event.request_context = context;
        (event.body, event.is_base64_encoded) = match &self.body {
            None => (None, false),
            Some(EventBody::Text(text)) => (Some(text.clone()), false),
            Some(EventBody::Binary(bytes)) => (Some(STANDARD.encode(bytes)), true),
        };
        event
    }

    /// The event's JSON, as the Lambda runtime receives it.
    pub fn to_json(&self) -> Value {
        to_json(&self.build())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).expect("an event serialises")
    }

    /// The request `lambda_http` makes of the event, as a handler gets it.
    pub fn request(&self) -> lambda_http::Request {
        parse(&self.to_json())
    }
}

/// Fields `aws_lambda_events` serialises that an HTTP API's payload 2.0
/// never carries (its custom-authorizer and REST leftovers).
const NOT_IN_PAYLOAD_2: [&str; 6] = [
    "type",
    "methodArn",
    "httpMethod",
    "identitySource",
    "authorizationToken",
    "resource",
];

/// `event`'s JSON, as API Gateway sends it.
pub fn to_json(event: &ApiGatewayV2httpRequest) -> Value {
    let mut json = serde_json::to_value(event).expect("an event serialises");
    if let Value::Object(fields) = &mut json {
        for name in NOT_IN_PAYLOAD_2 {
            fields.remove(name);
        }
    }
    json
}

/// The request `lambda_http` makes of event JSON (panics if it cannot).
pub fn parse(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).expect("lambda_http reads the event")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::request::RequestContext;
    use lambda_http::{Body, RequestExt};
    use serde_json::json;

    fn claims_of(request: &lambda_http::Request) -> Option<HashMap<String, String>> {
        match request.request_context_ref()? {
            RequestContext::ApiGatewayV2(context) => {
                Some(context.authorizer.as_ref()?.jwt.as_ref()?.claims.clone())
            }
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    #[test]
    fn an_authorized_post_carries_method_path_params_claims_and_json() {
        let request = Event::post("/consents/bc_7/confirm")
            .user("u1")
            .json(&json!({"code": "123456"}))
            .request();
        assert_eq!(request.method(), "POST");
        assert_eq!(request.uri().path(), "/consents/bc_7/confirm");
        assert_eq!(request.path_parameters().first("id"), Some("bc_7"));
        assert_eq!(request.headers()["content-type"], "application/json");
        let claims = claims_of(&request).expect("claims");
        assert_eq!(claims["sub"], "u1");
        assert_eq!(claims["email"], "u1@example.com");
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(
            request.body(),
            &Body::Text(r#"{"code":"123456"}"#.to_owned())
        );
        let RequestContext::ApiGatewayV2(context) = request.request_context() else {
            unreachable!("payload 2.0");
        };
        assert_eq!(
            context.route_key.as_deref(),
            Some("POST /consents/{id}/confirm")
        );
    }

    #[test]
    fn the_query_stays_raw_and_without_a_user_there_are_no_claims() {
        let raw = "fx_consent=bc_1&state=a.b%2Bc%2Fd&x=%zz";
        let event = Event::get(&format!("/callback?{raw}"));
        let json = event.to_json();
        assert_eq!(json["rawQueryString"], raw);
        assert_eq!(json["routeKey"], "GET /callback");
        assert!(json["requestContext"].get("authorizer").is_none());
        assert!(json.get("pathParameters").is_none());
        let request = event.request();
        assert_eq!(request.uri().query(), Some(raw));
        assert_eq!(
            request.query_string_parameters().first("state"),
            Some("a.b+c/d")
        );
        assert!(claims_of(&request).is_none());
    }

    #[test]
    fn query_pairs_are_encoded_as_a_browser_does() {
        let event =
            Event::get("/callback").query_pairs(&[("fx_consent", "bc_1"), ("state", "a b+/")]);
        assert_eq!(
            event.to_json()["rawQueryString"],
            "fx_consent=bc_1&state=a+b%2B%2F"
        );
        let request = event.request();
        assert_eq!(
            request.query_string_parameters().first("state"),
            Some("a b+/")
        );
    }

    #[test]
    fn cookies_travel_in_cookies_and_reach_the_request_as_one_header() {
        let event = Event::get("/callback").cookie("a=1").cookie("b=2");
        let json = event.to_json();
        assert_eq!(json["cookies"], json!(["a=1", "b=2"]));
        assert!(json["headers"].get("cookie").is_none());
        assert_eq!(event.request().headers()["cookie"], "a=1; b=2");
    }

    #[test]
    fn binary_bodies_are_base64_and_decode_to_the_same_bytes() {
        let bytes = [0xff, 0x00, b'{', 0xc3];
        let event = Event::post("/webhooks/finexer").body(&bytes);
        let json = event.to_json();
        assert_eq!(json["isBase64Encoded"], true);
        assert_eq!(json["body"], STANDARD.encode(bytes));
        assert_eq!(event.request().body(), &Body::Binary(bytes.to_vec()));
        let text = Event::post("/webhooks/finexer").body(b"{}").to_json();
        assert_eq!(text["isBase64Encoded"], false);
        assert_eq!(text["body"], "{}");
        assert!(
            Event::post("/links")
                .body(b"")
                .to_json()
                .get("body")
                .is_none()
        );
    }

    #[test]
    fn paths_off_the_route_table_are_the_default_route() {
        let json = Event::get("/nowhere/%zz").user("u1").to_json();
        assert_eq!(json["routeKey"], "$default");
        assert_eq!(json["requestContext"]["routeKey"], "$default");
        assert_eq!(json["rawPath"], "/nowhere/%zz");
        assert_eq!(
            json["requestContext"]["authorizer"]["jwt"]["claims"]["sub"],
            "u1"
        );
    }

    #[test]
    fn the_json_is_payload_2_0_only() {
        let json = Event::post("/links").request_id("r9").to_json();
        assert_eq!(json["version"], "2.0");
        assert_eq!(json["requestContext"]["requestId"], "r9");
        assert_eq!(json["requestContext"]["http"]["method"], "POST");
        for name in NOT_IN_PAYLOAD_2 {
            assert!(json.get(name).is_none(), "{name} in {json}");
        }
        assert_eq!(
            serde_json::from_slice::<Value>(&Event::post("/links").to_bytes()).unwrap(),
            Event::post("/links").to_json()
        );
    }

    #[test]
    fn a_header_replaces_one_of_the_same_name() {
        let request = Event::post("/links")
            .header("Content-Type", "text/plain")
            .header("content-type", "application/json")
            .request();
        assert_eq!(request.headers().get_all("content-type").iter().count(), 1);
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(request.headers()["host"], HOST);
    }
}
