//! Lists: `{"data", "count", "paging": {"total", "next", "prev"}}`, offset paging, 20 by default, up to 100.

use reqwest::StatusCode;

use crate::helpers::{TestSandbox, error_code};

async fn create_consents(sandbox: &TestSandbox, customer: &str, how_many: usize) {
    for _ in 0..how_many {
        let (status, _) = sandbox
            .post_json_answer("/consents", &[("customer", customer)])
            .await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn consent_lists_page_by_offset_and_limit() {
    let sandbox = TestSandbox::start().await;
    let customer = sandbox.create_customer().await;
    create_consents(&sandbox, &customer, 25).await;
    let base = format!("/consents?customer={customer}");

    let (status, first) = sandbox.get_json(&base).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["data"].as_array().unwrap().len(), 20);
    assert_eq!(first["count"], 20);
    assert_eq!(first["paging"]["total"], 25);
    assert!(first["paging"]["prev"].is_null());
    let next = first["paging"]["next"].as_str().expect("a next page");
    assert!(
        next.contains("offset=20") && next.contains(&format!("customer={customer}")),
        "{next}"
    );

    // Following `next` as given reaches the rest.
    let next_path = next.strip_prefix(&sandbox.sandbox.base_url()).unwrap();
    let (_, second) = sandbox.get_json(next_path).await;
    assert_eq!(second["count"], 5);
    assert!(second["paging"]["next"].is_null());
    assert!(
        second["paging"]["prev"]
            .as_str()
            .unwrap()
            .contains("offset=0")
    );

    let first_ids: Vec<_> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert!(
        second["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !first_ids.contains(&c["id"]))
    );

    let (_, limited) = sandbox.get_json(&format!("{base}&limit=5&offset=10")).await;
    assert_eq!(limited["count"], 5);
    assert!(
        limited["paging"]["next"]
            .as_str()
            .unwrap()
            .contains("offset=15")
    );
    assert!(
        limited["paging"]["prev"]
            .as_str()
            .unwrap()
            .contains("offset=5")
    );
    assert_eq!(limited["data"][0]["id"], first["data"][10]["id"]);

    let (_, capped) = sandbox.get_json(&format!("{base}&limit=500")).await;
    assert_eq!(capped["count"], 25);

    let (status, body) = sandbox.get_json(&format!("{base}&limit=abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body, "request_error"), "parameter_invalid");
}

#[tokio::test]
async fn consent_lists_filter_by_customer_and_status() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.pending_consent(&[]).await;
    let customer = consent["customer"].as_str().unwrap();
    create_consents(&sandbox, customer, 2).await;
    sandbox.approve(&consent, "sandbox-barclays").await;
    sandbox.post_json_answer("/consents", &[]).await;

    let (_, authorized) = sandbox
        .get_json(&format!("/consents?customer={customer}&status=authorized"))
        .await;
    assert_eq!(authorized["paging"]["total"], 1);
    assert_eq!(authorized["data"][0]["id"], consent["id"]);
    let (_, pending) = sandbox
        .get_json(&format!("/consents?customer={customer}&status=pending"))
        .await;
    assert_eq!(pending["paging"]["total"], 2);
    let (_, new) = sandbox.get_json("/consents?status=new").await;
    assert_eq!(new["paging"]["total"], 1);
    let (status, body) = sandbox.get_json("/consents?status=cancelled").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "British spelling is not a status"
    );
    assert_eq!(error_code(&body, "request_error"), "parameter_invalid");
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
