//! Lists: `{"data", "count", "paging": {"total", "next", "prev"}}`, offset paging, 20 by default, up to 100.

use reqwest::StatusCode;

use crate::helpers::{TestSandbox, error_code};

#[tokio::test]
async fn lists_page_by_offset_and_limit() {
    let sandbox = TestSandbox::start().await;
    let (status, all) = sandbox.get_json("/providers").await;
    assert_eq!(status, StatusCode::OK);
    let total = all["paging"]["total"].as_u64().unwrap();
    assert!(total > 4, "{all}");
    assert_eq!(all["count"], total, "one default page of 20 holds them all");
    assert!(all["paging"]["next"].is_null() && all["paging"]["prev"].is_null());

    let (_, first) = sandbox.get_json("/providers?limit=4").await;
    assert_eq!(first["count"], 4);
    assert_eq!(first["paging"]["total"], total);
    assert!(first["paging"]["prev"].is_null());
    let next = first["paging"]["next"].as_str().expect("a next page");
    assert!(
        next.contains("offset=4") && next.contains("limit=4"),
        "{next}"
    );

    // Following `next` as given reaches the rest.
    let next_path = next.strip_prefix(&sandbox.sandbox.base_url()).unwrap();
    let (_, second) = sandbox.get_json(next_path).await;
    assert_eq!(second["count"], total - 4);
    assert!(second["paging"]["next"].is_null());
    assert!(
        second["paging"]["prev"]
            .as_str()
            .unwrap()
            .contains("offset=0")
    );
    assert_eq!(second["data"][0], all["data"][4]);

    let (_, middle) = sandbox.get_json("/providers?limit=2&offset=2").await;
    assert_eq!(middle["data"][0], all["data"][2]);
    assert!(
        middle["paging"]["prev"]
            .as_str()
            .unwrap()
            .contains("offset=0")
    );

    for bad_limit in ["abc", "0"] {
        let (status, body) = sandbox
            .get_json(&format!("/providers?limit={bad_limit}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad_limit}");
        assert_eq!(error_code(&body, "request_error"), "parameter_invalid");
    }
}

#[tokio::test]
async fn providers_are_uk_sandbox_banks_filtered_by_role() {
    let sandbox = TestSandbox::start().await;
    let (status, providers) = sandbox.get_json("/providers?roles[]=ais&offset=0").await;
    assert_eq!(status, StatusCode::OK);
    let data = providers["data"].as_array().unwrap();
    assert!((5..=6).contains(&data.len()), "{providers}");
    let ids: Vec<_> = data.iter().map(|p| p["id"].as_str().unwrap()).collect();
    for expected in [
        "sandbox-barclays",
        "sandbox-lloyds",
        "sandbox-monzo",
        "sandbox-hsbc",
        "sandbox-natwest",
    ] {
        assert!(ids.contains(&expected), "{ids:?}");
    }
    for provider in data {
        for field in [
            "id",
            "name",
            "roles",
            "logo_url",
            "bg_colors",
            "health_status",
        ] {
            assert!(!provider[field].is_null(), "{field} in {provider}");
        }
    }
    let (_, pis) = sandbox.get_json("/providers?roles[]=pis").await;
    assert!(pis["count"].as_u64().unwrap() < data.len() as u64);

    let logo = data[0]["logo_url"].as_str().unwrap();
    let response = sandbox.client.get(logo).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().starts_with("<svg"));

    let (_, second_page) = sandbox
        .get_json("/providers?roles[]=ais&limit=2&offset=2")
        .await;
    assert_eq!(second_page["data"][0]["id"], data[2]["id"]);
    assert!(
        second_page["paging"]["next"]
            .as_str()
            .unwrap()
            .contains("roles%5B%5D=ais")
    );
}
