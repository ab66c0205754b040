//! API Gateway HTTP API (payload 2.0) events, made safe before `lambda_http`
//! converts them.
//!
//! lambda_http 1.3 turns an event into an `http::Request` with
//! `.expect("failed to build request")`, `Url::parse(..).unwrap()` and
//! `Body::from_maybe_encoded` (which `expect`s valid base64). So an event whose
//! `rawQueryString` holds a raw space, `"`, `<`, `>` or control byte, whose
//! `rawPath` does not start with `/`, whose `Host` or `X-Forwarded-Proto`
//! header does not make a URL, whose URL is longer than `http::Uri` takes
//! (65,534 bytes), or whose base64 body is not base64 panics there, before
//! any handler runs. An invalid header name or value, or a cookie with a
//! control byte, does not panic but makes the whole event unreadable (or
//! silently drops every cookie).
//!
//! [`sanitize`] rewrites exactly those parts of the event, in place:
//!
//! - `rawPath`, `requestContext.http.path` and `requestContext.stage`, and
//!   `rawQueryString`: every byte RFC 3986 does not allow there is
//!   percent-encoded (UTF-8, byte by byte), a valid `%XX` escape is kept, a
//!   stray `%` becomes `%25`. That is a superset of what `http::Uri` refuses
//!   (it tolerates `{`, `|`, `^` and a few others), chosen so that the result
//!   does not depend on `http`'s tolerances. A percent-encoded character
//!   decodes to the character itself, so the decoded parameters are what the
//!   client sent: a raw space is read as `%20`, `state=a%20b` still gives
//!   `a b`, and delimiters (`&`, `=`, `+`, `/`, `;`) are left as they are. A
//!   path that does not start with `/` gets one.
//! - header values and cookies: the bytes an `http::HeaderValue` refuses
//!   (control bytes other than tab, and DEL) are percent-encoded; a header
//!   whose name is not a valid header name, or whose value is not text, is
//!   dropped. A `Host` header or `requestContext.domainName` that is not a
//!   plain `host[:port]`, and an `X-Forwarded-Proto` other than http(s), are
//!   dropped (lambda_http then uses the next source, or none).
//!
//! and refuses (see [`Refusal`]) what cannot be repaired: a base64 body that
//! is not base64, a URL too long for `http::Uri`, and a payload that is not an
//! API Gateway v2 event at all. [`repair_json`] makes the raw payload valid
//! UTF-8 JSON first (invalid UTF-8, lone surrogate escapes), so that the
//! runtime can read it at all.

use std::borrow::Cow;

use base64::Engine;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_http::request::LambdaRequest;
use serde_json::{Map, Value};

/// The longest URI `http::Uri` accepts (`u16::MAX - 1`).
pub const MAX_URI_BYTES: usize = 65_534;

/// Why an event is answered without calling the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an API Gateway v2 event (API Gateway never sends one).
    NotAnEvent,
    /// `isBase64Encoded` is true but the body is not base64.
    BadBase64Body,
    /// The request URL, once encoded, is longer than [`MAX_URI_BYTES`].
    UriTooLong,
}

impl Refusal {
    /// What the caller is told (400 for all three).
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::NotAnEvent => "the request could not be read",
            Refusal::BadBase64Body => "the request body is not valid base64",
            Refusal::UriTooLong => "the request URL is too long",
        }
    }
}

/// Sanitises `event` (see the module documentation) and reads it as the
/// request lambda_http converts without panicking.
pub fn into_lambda_request(mut event: Value) -> Result<LambdaRequest, Refusal> {
    sanitize(&mut event)?;
    serde_json::from_value::<ApiGatewayV2httpRequest>(event)
        .map(LambdaRequest::ApiGatewayV2)
        .map_err(|_| Refusal::NotAnEvent)
}

/// Rewrites, in place, every part of an API Gateway v2 event that would make
/// lambda_http panic or drop the event; refuses what cannot be repaired.
pub fn sanitize(event: &mut Value) -> Result<(), Refusal> {
    let Some(event) = event.as_object_mut() else {
        return Err(Refusal::NotAnEvent);
    };

    let raw_path = map_str(event, "rawPath", path);
    let query = map_str(event, "rawQueryString", |q| {
        encode(q, is_query_byte).into_owned()
    });

    if let Some(headers) = event.get_mut("headers") {
        sanitize_headers(headers);
    }
    if let Some(cookies) = event.get_mut("cookies") {
        sanitize_cookies(cookies);
    }

    let mut host_len = 0;
    let mut stage_len = 0;
    if let Some(context) = event
        .get_mut("requestContext")
        .and_then(Value::as_object_mut)
    {
        if let Some(http) = context.get_mut("http").and_then(Value::as_object_mut) {
            map_str(http, "path", path);
        }
        stage_len = map_str(context, "stage", |s| encode(s, is_path_byte).into_owned());
        if context
            .get("domainName")
            .and_then(Value::as_str)
            .is_some_and(|d| !is_plain_host(d))
        {
            context.remove("domainName");
        }
        host_len = context
            .get("domainName")
            .and_then(Value::as_str)
            .map_or(0, str::len);
    }
    if let Some(host) = event
        .get("headers")
        .and_then(Value::as_object)
        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("host")))
        .and_then(|(_, v)| v.as_str())
    {
        host_len = host_len.max(host.len());
    }
    // "https://" host "/" stage path "?" query: what lambda_http hands to
    // `http::Uri` at most (the URL parser only shortens a path made of
    // these characters).
    let uri_len = "https://".len() + host_len + 1 + stage_len + raw_path + 1 + query;
    if uri_len > MAX_URI_BYTES {
        return Err(Refusal::UriTooLong);
    }

    let base64 = event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true);
    if base64
        && let Some(body) = event.get("body").and_then(Value::as_str)
        && base64::engine::general_purpose::STANDARD
            .decode(body)
            .is_err()
    {
        return Err(Refusal::BadBase64Body);
    }
    Ok(())
}

/// Replaces the string at `key` (if it is one) by `f(value)`; returns the new
/// length (0 if absent).
fn map_str(object: &mut Map<String, Value>, key: &str, f: impl Fn(&str) -> String) -> usize {
    match object.get_mut(key) {
        Some(Value::String(s)) => {
            let new = f(s);
            let len = new.len();
            *s = new;
            len
        }
        _ => 0,
    }
}

/// An absolute path made of characters a URI path may hold.
fn path(raw: &str) -> String {
    let encoded = encode(raw, is_path_byte);
    if encoded.starts_with('/') {
        encoded.into_owned()
    } else {
        format!("/{encoded}")
    }
}

/// RFC 3986 `unreserved` and `sub-delims`.
fn is_unreserved_or_sub_delim(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// What a path may hold unencoded (RFC 3986 `pchar` and `/`).
pub fn is_path_byte(b: u8) -> bool {
    is_unreserved_or_sub_delim(b) || matches!(b, b':' | b'@' | b'/')
}

/// What a query may hold unencoded (RFC 3986 `query`).
pub fn is_query_byte(b: u8) -> bool {
    is_path_byte(b) || b == b'?'
}

/// Percent-encodes every byte of `raw` that `keep` refuses, except the `%`
/// of a valid escape (`%` and two hex digits); a stray `%` becomes `%25`.
/// Borrowed when nothing needed encoding.
pub fn encode(raw: &str, keep: fn(u8) -> bool) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    let escape_at = |i: usize| matches!(bytes.get(i + 1..i + 3), Some([a, b]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit());
    let ok = |i: usize, b: u8| keep(b) || (b == b'%' && escape_at(i));
    if bytes.iter().enumerate().all(|(i, &b)| ok(i, b)) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len() + raw.len() / 2);
    for (i, &b) in bytes.iter().enumerate() {
        if ok(i, b) {
            out.push(char::from(b));
        } else {
            push_escape(&mut out, b);
        }
    }
    Cow::Owned(out)
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xF)]));
}

/// The bytes `http::HeaderValue::from_str` refuses, percent-encoded.
fn header_value(raw: &str) -> Cow<'_, str> {
    let refused = |b: u8| (b < 0x20 && b != b'\t') || b == 0x7F;
    if !raw.bytes().any(refused) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len() + 8);
    for c in raw.chars() {
        match u8::try_from(c) {
            Ok(b) if refused(b) => push_escape(&mut out, b),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn sanitize_headers(headers: &mut Value) {
    let Some(map) = headers.as_object_mut() else {
        *headers = Value::Object(Map::new());
        return;
    };
    map.retain(|name, value| {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return false;
        }
        let text_ok = match value {
            Value::String(s) => {
                *s = header_value(s).into_owned();
                true
            }
            Value::Array(items) => {
                items.retain(Value::is_string);
                for item in items.iter_mut() {
                    if let Value::String(s) = item {
                        *s = header_value(s).into_owned();
                    }
                }
                true
            }
            _ => false,
        };
        if !text_ok {
            return false;
        }
        // lambda_http builds the request URL from these two.
        if name.eq_ignore_ascii_case("host") {
            return value.as_str().is_some_and(is_plain_host);
        }
        if name.eq_ignore_ascii_case("x-forwarded-proto") {
            return value.as_str().is_some_and(|p| {
                p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("http")
            });
        }
        true
    });
}

fn sanitize_cookies(cookies: &mut Value) {
    match cookies {
        Value::Array(items) => {
            items.retain(Value::is_string);
            for item in items.iter_mut() {
                if let Value::String(s) = item {
                    *s = header_value(s).into_owned();
                }
            }
        }
        _ => *cookies = Value::Null,
    }
}

/// `host` or `host:port` as a DNS name or IPv4 address, which the URL parser
/// accepts as it is (letters, digits, `-`, `.`; a port of 1 to 65535).
fn is_plain_host(host: &str) -> bool {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    });
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && port_ok
        // The parser also refuses some of these (a bad IPv4 address such as
        // 1.2.3.999, an invalid punycode label): ask it.
        && url::Url::parse(&format!("https://{host}/")).is_ok()
}

/// Makes the raw invocation payload valid UTF-8 JSON text for the runtime:
/// invalid UTF-8 becomes U+FFFD, and so does a `\uD800`-`\uDFFF` escape that
/// is not half of a surrogate pair (serde_json refuses both, and the runtime
/// would answer the invocation with an error instead of an HTTP response).
/// Borrowed when the payload was fine.
pub fn repair_json(raw: &[u8]) -> Cow<'_, [u8]> {
    let text = String::from_utf8_lossy(raw);
    if !has_surrogate_escape(text.as_bytes()) {
        return match text {
            Cow::Borrowed(_) => Cow::Borrowed(raw),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        };
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'\\' {
            out.push(b);
            rest = tail;
            continue;
        }
        let high = surrogate_at(rest);
        let low = rest.get(6..).and_then(surrogate_at);
        let taken = match (high, low) {
            (Some(0xD800..=0xDBFF), Some(0xDC00..=0xDFFF)) => 12, // a pair: kept
            (Some(_), _) => {
                out.extend_from_slice(b"\\ufffd");
                rest = rest.get(6..).unwrap_or_default();
                continue;
            }
            // Any other escape is copied whole, so that the `u` of `\\u`
            // is not read as the start of one.
            (None, _) => 2,
        };
        let (escape, tail) = rest.split_at(taken.min(rest.len()));
        out.extend_from_slice(escape);
        rest = tail;
    }
    if out == raw {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(out)
}

fn has_surrogate_escape(bytes: &[u8]) -> bool {
    bytes
        .windows(3)
        .any(|w| matches!(w, [b'\\', b'u', b'd' | b'D']))
}

/// The code unit of the `\uXXXX` escape `bytes` starts with, if it is a
/// surrogate.
fn surrogate_at(bytes: &[u8]) -> Option<u16> {
    let [b'\\', b'u', hex @ ..] = bytes.get(..6)? else {
        return None;
    };
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let unit = u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    (0xD800..=0xDFFF).contains(&unit).then_some(unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn event(path: &str, query: &str) -> Value {
        json!({
            "version": "2.0",
            "routeKey": "GET /callback",
            "rawPath": path,
            "rawQueryString": query,
            "cookies": ["a=1", "b=2"],
            "headers": {"host": "api.example.com", "user-agent": "Mozilla/5.0"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.example.com",
                "requestId": "r1",
                "routeKey": "GET /callback",
                "stage": "$default",
                "time": "25/Nov/2026:10:00:00 +0000",
                "timeEpoch": 1_795_600_000_000u64,
                "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "192.0.2.1", "userAgent": "Mozilla/5.0"}
            },
            "isBase64Encoded": false
        })
    }

    /// Sanitises and converts as the runtime does (a panic fails the test).
    fn convert(event: Value) -> Result<lambda_http::Request, Refusal> {
        into_lambda_request(event).map(http::Request::from)
    }

    fn decoded(query: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn valid_escapes_stay_and_the_rest_is_encoded() {
        assert!(matches!(
            encode("state=a%20b&x=%7E+y", is_query_byte),
            Cow::Borrowed("state=a%20b&x=%7E+y")
        ));
        assert_eq!(encode("a b", is_query_byte), "a%20b");
        assert_eq!(encode("%zz%4", is_query_byte), "%25zz%254");
        assert_eq!(encode("100%", is_query_byte), "100%25");
        assert_eq!(
            encode("\"<>{|^`}\\[]#", is_query_byte),
            "%22%3C%3E%7B%7C%5E%60%7D%5C%5B%5D%23"
        );
        assert_eq!(encode("\u{1}\u{7f}é", is_query_byte), "%01%7F%C3%A9");
        assert_eq!(encode("/a?b#c", is_path_byte), "/a%3Fb%23c");
        assert_eq!(path("callback"), "/callback");
        assert_eq!(path(""), "/");
    }

    #[test]
    fn hostile_queries_keep_their_meaning() {
        let request = convert(event(
            "/callback",
            "state=a%20b&x=a b&y=\"<>`{|}^\u{1}é&z=%zz",
        ))
        .expect("converts");
        assert_eq!(
            decoded(request.uri().query().unwrap()),
            [
                ("state", "a b"),
                ("x", "a b"),
                ("y", "\"<>`{|}^\u{1}é"),
                ("z", "%zz"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(request.uri().path(), "/callback");
    }

    #[test]
    fn hostile_paths_convert() {
        for raw in [
            "consents/x",
            ":99999",
            "@evil",
            "/a b/\"<>`{}|^\\",
            "/%zz/%",
            "/a?b#c",
            "//x",
        ] {
            let request = convert(event(raw, "")).unwrap_or_else(|r| panic!("{raw:?}: {r:?}"));
            assert!(request.uri().path().starts_with('/'), "{raw:?}");
        }
        let request = convert(event("/consents/a b", "")).unwrap();
        assert_eq!(request.uri().path(), "/consents/a%20b");
    }

    #[test]
    fn bad_hosts_and_schemes_are_dropped() {
        for host in ["a b", "[", "1.2.3.999", "xn--a", "a:99999", "a@b", "", "a:"] {
            let mut e = event("/callback", "");
            e["headers"]["host"] = host.into();
            e["headers"]["X-Forwarded-Proto"] = "1".into();
            e["requestContext"]["domainName"] = host.into();
            let request = convert(e.clone()).unwrap_or_else(|r| panic!("{host:?}: {r:?}"));
            assert_eq!(request.uri().path(), "/callback");
            sanitize(&mut e).unwrap();
            assert!(e["headers"].get("host").is_none(), "{host:?}");
            assert!(e["headers"].get("X-Forwarded-Proto").is_none());
            assert!(e["requestContext"].get("domainName").is_none());
        }
        let mut e = event("/callback", "");
        e["headers"]["x-forwarded-proto"] = "https".into();
        e["headers"]["host"] = "api.example.com:8443".into();
        let request = convert(e).unwrap();
        assert_eq!(
            request.uri().to_string(),
            "https://api.example.com:8443/callback"
        );
    }

    #[test]
    fn headers_and_cookies_keep_what_they_can() {
        let mut e = event("/callback", "");
        e["headers"]["x-ctl"] = "a\u{0}b\tc\u{7f}".into();
        e["headers"]["bad name"] = "x".into();
        e["headers"]["x-num"] = json!(5);
        e["headers"]["x-list"] = json!(["a", 1, "b\u{1}"]);
        e["cookies"] = json!(["fx_bind=abc", "evil=\u{1}\u{0}", 7]);
        let request = convert(e).unwrap();
        let headers = request.headers();
        assert_eq!(headers["x-ctl"], "a%00b\tc%7F");
        assert!(headers.get("x-num").is_none());
        assert_eq!(
            headers.get_all("x-list").iter().collect::<Vec<_>>(),
            ["a", "b%01"]
        );
        assert_eq!(headers["cookie"], "fx_bind=abc; evil=%01%00");
        assert_eq!(headers["host"], "api.example.com");
    }

    #[test]
    fn bodies() {
        let mut e = event("/links", "");
        e["isBase64Encoded"] = true.into();
        e["body"] = "not base64!".into();
        assert_eq!(convert(e.clone()).err(), Some(Refusal::BadBase64Body));
        e["body"] = "eyJhIjoxfQ==".into();
        let request = convert(e.clone()).unwrap();
        assert_eq!(request.body().as_ref(), b"{\"a\":1}");
        e["isBase64Encoded"] = false.into();
        e["body"] = "x".repeat(300 * 1024).into();
        assert!(convert(e).is_ok());
    }

    #[test]
    fn long_urls() {
        let long = "\"".repeat(20 * 1024);
        assert!(convert(event(&long, &long)).is_err());
        assert!(convert(event("/callback", &long)).is_ok());
        assert!(convert(event(&long, "")).is_ok());
        let e = event(&"/".repeat(MAX_URI_BYTES), "");
        assert_eq!(convert(e).err(), Some(Refusal::UriTooLong));
    }

    #[test]
    fn not_events() {
        for e in [
            json!([1]),
            json!("x"),
            json!({"rawPath": 5}),
            json!({"requestContext": {"http": {"method": "GE T"}}}),
        ] {
            assert_eq!(convert(e).err(), Some(Refusal::NotAnEvent));
        }
    }

    #[test]
    fn json_is_repaired() {
        let fine = br#"{"a":"\ud83d\ude00 \\ud800 \u00e9"}"#;
        assert!(matches!(repair_json(fine), Cow::Borrowed(_)));
        let cases: [(&[u8], &str); 4] = [
            (b"{\"a\":\"\xff\xfe x\"}", "\u{fffd}\u{fffd} x"),
            (br#"{"a":"\ud800 x"}"#, "\u{fffd} x"),
            (
                br#"{"a":"\udc00\ud800\ud800\udc00"}"#,
                "\u{fffd}\u{fffd}\u{10000}",
            ),
            (br#"{"a":"\\ud800\ud800"}"#, "\\ud800\u{fffd}"),
        ];
        for (raw, want) in cases {
            assert!(serde_json::from_slice::<Value>(raw).is_err());
            let repaired: Value = serde_json::from_slice(&repair_json(raw)).unwrap();
            assert_eq!(repaired["a"], want);
        }
    }

    fn valid_component(keep: fn(u8) -> bool) -> impl Strategy<Value = String> {
        let plain: Vec<char> = (0u8..128).filter(|&b| keep(b)).map(char::from).collect();
        prop::collection::vec(
            prop_oneof![
                prop::sample::select(plain).prop_map(String::from),
                any::<u8>().prop_map(|b| format!("%{b:02x}")),
                any::<u8>().prop_map(|b| format!("%{b:02X}")),
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn any_text_converts(path in any::<String>(), query in any::<String>(),
                             header in any::<String>(), cookie in any::<String>()) {
            let mut e = event(&path, &query);
            e["headers"]["x-any"] = header.into();
            e["headers"]["host"] = cookie.clone().into();
            e["cookies"] = json!([cookie]);
            let request = convert(e).expect("converts");
            prop_assert_eq!(decoded(request.uri().query().unwrap_or_default()), decoded(&query));
        }

        #[test]
        fn valid_input_is_unchanged(path in valid_component(is_path_byte),
                                    query in valid_component(is_query_byte)) {
            let path = format!("/{path}");
            let mut e = event(&path, &query);
            let before = e.clone();
            sanitize(&mut e).unwrap();
            prop_assert_eq!(e, before);
        }
    }
}
