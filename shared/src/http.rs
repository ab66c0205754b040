//! HTTP helpers shared by the handlers: JSON bodies in and out, redirects,
//! the return-target allow-list, cookies and the browser's error page.

use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, Result};

/// Largest JSON body the API reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A frontend URL from the configured allow-list; the only kind of URL the
/// callback ever redirects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTarget(Url);

impl ReturnTarget {
    /// Accepts `raw` only if it is, after URL normalisation, exactly one of
    /// `allowed`: no other host, path, port, user info or query.
    pub fn parse(raw: &str, allowed: &[Url]) -> Result<ReturnTarget> {
        let refused = || Error::BadRequest("return_to is not an allowed frontend URL".into());
        if raw.len() > 2048 || raw.chars().any(char::is_control) {
            return Err(refused());
        }
        let url = Url::parse(raw).map_err(|_| refused())?;
        allowed
            .iter()
            .find(|allowed| **allowed == url)
            .map(|allowed| ReturnTarget(allowed.clone()))
            .ok_or_else(refused)
    }

    /// Trusted because it came from our own record, written after `parse`.
    pub fn from_record(raw: &str, allowed: &[Url]) -> Result<ReturnTarget> {
        Self::parse(raw, allowed)
            .map_err(|_| Error::Internal("recorded return target is no longer allowed".into()))
    }

    pub fn with_query(&self, pairs: &[(&str, &str)]) -> Url {
        let mut url = self.0.clone();
        url.query_pairs_mut().extend_pairs(pairs);
        url
    }

    /// `with_query`, and the one-time confirmation `code` in the fragment,
    /// which browsers never send to a server (nor in a `Referer`). The
    /// fragment is the code's alone: one the configured URL has is replaced.
    pub fn with_query_and_code(&self, pairs: &[(&str, &str)], code: &str) -> Url {
        let mut url = self.with_query(pairs);
        let fragment = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", code)
            .finish();
        url.set_fragment(Some(&fragment));
        url
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Reads an optional JSON body: empty means `T::default()`.
pub fn json_body<T: DeserializeOwned + Default>(request: &Request) -> Result<T> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => return Ok(T::default()),
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => return Err(Error::BadRequest("unsupported body".into())),
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Error::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if let Some(kind) = request.headers().get("content-type") {
        let kind = kind.to_str().unwrap_or_default().to_ascii_lowercase();
        let media_type = kind.split(';').next().unwrap_or_default().trim();
        if media_type != "application/json" {
            return Err(Error::BadRequest(
                "the body must be JSON (content-type: application/json)".into(),
            ));
        }
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::BadRequest("the body is not valid UTF-8".into()))?;
    // serde would also read a struct from a JSON array (positionally); the
    // API takes objects only. Deserialising straight into `T` keeps serde's
    // refusal of duplicate and unknown fields.
    if !text.trim_start().starts_with('{') {
        return Err(Error::BadRequest(
            "invalid JSON body: expected a JSON object".into(),
        ));
    }
    serde_json::from_str(text).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
}

pub fn json_response<T: Serialize>(status: u16, value: &T) -> Result<Response<Body>> {
    let body = serde_json::to_string(value)
        .map_err(|e| Error::Internal(format!("response encoding: {e}")))?;
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Body::Text(body))
        .map_err(|e| Error::Internal(e.to_string()))
}

/// A `303 See Other` to an allow-listed URL.
pub fn redirect(to: &Url) -> Result<Response<Body>> {
    Response::builder()
        .status(303)
        .header("location", to.as_str())
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .body(Body::Empty)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// The query string's parameters, each name at most once.
pub fn query_params(request: &Request) -> Result<Vec<(String, String)>> {
    const MAX_QUERY_BYTES: usize = 4096;
    let query = request.uri().query().unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return Err(Error::BadRequest("the query string is too long".into()));
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (i, (name, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(other, _)| other == name) {
            // Not echoed: the name is the caller's text.
            return Err(Error::BadRequest("a query parameter is repeated".into()));
        }
    }
    Ok(pairs)
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML page for the browser; never cached, never leaking the URL onwards.
pub fn html_page(status: u16, page: &str) -> Result<Response<Body>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .body(Body::Text(page.to_owned()))
        .map_err(|e| Error::Internal(e.to_string()))
}

/// What a browser sees when it comes back without our state: one page for
/// every consent, whatever its status, so that the page reveals nothing.
pub fn unfinished_page(home: &Url) -> String {
    error_page(
        "Bank connection not completed here",
        "This window cannot finish the bank connection. Go back to the app to see \
         whether it went through, or to try again.",
        home,
    )
}

/// The plain page a browser sees when the callback cannot continue.
pub fn error_page(title: &str, detail: &str, home: &Url) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;background:#f5f6f8;color:#1d2330;display:flex;min-height:100vh;align-items:center;justify-content:center;margin:0}}
main{{background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:2rem 2.5rem;max-width:28rem}}
h1{{font-size:1.3rem;margin-top:0}}a{{color:#2450c8}}</style></head>
<body><main id="callback-error"><h1>{title}</h1><p>{detail}</p><p><a href="{home}">Back to the app</a></p></main></body></html>"#,
        title = escape_html(title),
        detail = escape_html(detail),
        home = escape_html(home.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<Url> {
        vec![
            Url::parse("https://app.example.com/connected").unwrap(),
            Url::parse("http://127.0.0.1:3000/").unwrap(),
        ]
    }

    #[test]
    fn only_exact_allow_listed_urls_are_return_targets() {
        let ok = [
            "https://app.example.com/connected",
            "HTTPS://APP.EXAMPLE.COM/connected",
        ];
        for raw in ok {
            assert_eq!(
                ReturnTarget::parse(raw, &allowed()).unwrap().as_str(),
                "https://app.example.com/connected",
                "{raw}"
            );
        }
        let refused = [
            "https://evil.example/connected",
            "//evil.example",
            "https://app.example.com.evil.example/connected",
            "https://app.example.com@evil.example/connected",
            "https://user@app.example.com/connected",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "https://app.example.com/connected/../admin",
            "https://app.example.com/connected?next=https://evil.example",
            "https://app.example.com/connected#frag",
            "https://app.example.com:444/connected",
            "http://app.example.com/connected",
            "https://app.example.com/Connected",
            "https%3A%2F%2Fapp.example.com%2Fconnected",
            "https://app.example.com/connected\r\nSet-Cookie: a=b",
            "/connected",
            "",
        ];
        for raw in refused {
            assert!(
                ReturnTarget::parse(raw, &allowed()).is_err(),
                "{raw} accepted"
            );
        }
    }

    #[test]
    fn query_values_are_encoded_into_the_redirect() {
        let target = ReturnTarget::parse("http://127.0.0.1:3000/", &allowed()).unwrap();
        let url = target.with_query(&[("consent_id", "bc_1\r\nX: y"), ("status", "authorized")]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:3000/?consent_id=bc_1%0D%0AX%3A+y&status=authorized"
        );
    }

    #[test]
    fn the_code_goes_in_the_fragment_and_replaces_one_already_there() {
        let pairs = [("consent_id", "bc_1"), ("status", "authorized")];
        let plain = ReturnTarget(Url::parse("https://app.example.com/connected").unwrap());
        assert_eq!(
            plain.with_query_and_code(&pairs, "c0de-_").as_str(),
            "https://app.example.com/connected?consent_id=bc_1&status=authorized#code=c0de-_"
        );
        // A hash-routed frontend's fragment gives way to the code: the
        // page reads the code from the fragment, its route from the path.
        let routed = ReturnTarget(Url::parse("https://app.example.com/?tab=1#/connected").unwrap());
        let url = routed.with_query_and_code(&pairs, "c0de");
        assert_eq!(
            url.as_str(),
            "https://app.example.com/?tab=1&consent_id=bc_1&status=authorized#code=c0de"
        );
        assert!(!url.query().unwrap().contains("code"));
        // Outcomes without a code keep the configured URL's fragment.
        assert_eq!(routed.with_query(&pairs).fragment(), Some("/connected"));
    }

    #[test]
    fn error_page_escapes_what_it_shows() {
        let page = error_page("<b>", "a & \"b\"", &allowed()[0]);
        assert!(page.contains("&lt;b&gt;"));
        assert!(page.contains("a &amp; &quot;b&quot;"));
        assert!(!page.contains("<b>"));
    }
}
