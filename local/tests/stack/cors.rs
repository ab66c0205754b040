//! The demo frontend on another site than the API, and the gateway's CORS
//! (infra/template.yaml `CorsConfiguration`) in front of the API.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

use crate::support::*;

fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

impl Stack {
    async fn preflight(&self, path: &str, origin: &str, method: &str) -> reqwest::Response {
        self.http
            .request(Method::OPTIONS, format!("{}{path}", self.base))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_gateway_admits_the_frontend_origin_only() {
    let stack = Stack::start().await;
    // The frontend's origin (FRONTEND_URLS) and two others: the same
    // address under the API's host name, and another site.
    let frontend = stack.demo.clone();
    let port = frontend.rsplit(':').next().unwrap();
    let others = [
        format!("http://127.0.0.1:{port}"),
        "https://evil.example".to_owned(),
    ];

    // Preflights are the gateway's: answered before the authorizer (no token
    // here), for routes of every function.
    for (path, method) in [
        ("/consents", "GET"),
        ("/links", "POST"),
        ("/consents/bc_x/revoke", "POST"),
    ] {
        let response = stack.preflight(path, &frontend, method).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{path}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], frontend.as_str());
        assert_eq!(headers["access-control-allow-methods"], "GET,POST");
        assert_eq!(
            headers["access-control-allow-headers"],
            "authorization,content-type"
        );
        assert_eq!(headers["access-control-max-age"], "600");
        assert!(headers.get("access-control-allow-credentials").is_none());

        for origin in &others {
            let response = stack.preflight(path, origin, method).await;
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
            assert_eq!(
                cors_headers(response.headers()),
                Vec::<String>::new(),
                "{origin}"
            );
        }
    }

    // Actual requests: the origin is echoed for the frontend only; never
    // credentials.
    let token = stack.token("cors").await;
    let response = stack
        .http
        .get(format!("{}/consents", stack.base))
        .header("origin", &frontend)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        frontend.as_str()
    );
    assert!(
        response
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    // Errors too (a 401 from the authorizer), or the page could not read them.
    let response = stack
        .http
        .get(format!("{}/consents", stack.base))
        .header("origin", &frontend)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        cors_headers(response.headers()),
        ["access-control-allow-origin"]
    );
    for origin in &others {
        let response = stack
            .http
            .get(format!("{}/consents", stack.base))
            .header("origin", origin)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            cors_headers(response.headers()),
            Vec::<String>::new(),
            "{origin}"
        );
    }
}

#[tokio::test]
async fn the_demo_is_another_site_than_the_api() {
    let stack = Stack::start().await;
    let api = url::Url::parse(&stack.base).unwrap();
    let demo = url::Url::parse(&stack.demo).unwrap();
    assert_eq!(demo.host_str(), Some("localhost"));
    assert_ne!(
        demo.host_str(),
        api.host_str(),
        "another site, not only another port"
    );

    // The page learns where the API is.
    for path in ["/", "/connected?consent_id=bc_x&status=canceled"] {
        let response = stack.get(&format!("{}{path}", stack.demo)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let html = response.text().await.unwrap();
        assert!(
            html.contains(&format!(
                r#"<meta name="connect-api" content="{}">"#,
                stack.base
            )),
            "{path}"
        );
    }
    // Under the API's host name the page would be the API's site: it sends
    // the browser to the demo's own URL.
    let same_site = format!("http://127.0.0.1:{}/connected?x=1", demo.port().unwrap());
    let response = stack.get(&same_site).await;
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        response.headers()["location"],
        format!("{}/connected?x=1", stack.demo).as_str()
    );

    // The API serves only the API; the sign-in is the platform's, on the demo.
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/static/app.js"),
        (Method::POST, "/local/token"),
    ] {
        let response = stack
            .http
            .request(method, format!("{}{path}", stack.base))
            .json(&serde_json::json!({"user": "x"}))
            .send()
            .await
            .unwrap();
        problem(response, 404).await;
    }
    assert!(!stack.token("demo-user").await.is_empty());
}
