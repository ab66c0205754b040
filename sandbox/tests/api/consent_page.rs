//! The hosted consent page, driven like a browser that does not follow redirects.

use reqwest::StatusCode;

use crate::helpers::{TestSandbox, query_pairs};

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn choosing_a_bank_and_approving_returns_with_fx_consent_and_original_parameters() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.pending_consent(&[]).await;
    let id = consent["id"].as_str().unwrap();
    let page = sandbox.page_path(&consent);

    // Info screen first, with the phone box.
    let (status, html) = sandbox.page(&page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"id="step-info""#));
    assert!(html.contains(r#"id="continue""#));
    assert!(html.contains(r#"id="qr-box""#) && html.contains("Open on your phone"));
    assert!(
        html.contains("app.example"),
        "shows where the user returns to"
    );

    // Continue → bank picker with one button per bank.
    let (_, html) = sandbox.page(&format!("{page}?step=bank")).await;
    assert!(html.contains(r#"id="step-bank""#));
    for bank in [
        "sandbox-barclays",
        "sandbox-lloyds",
        "sandbox-monzo",
        "sandbox-hsbc",
        "sandbox-natwest",
    ] {
        assert!(
            html.contains(&format!(r#"data-provider="{bank}""#)),
            "{bank}"
        );
    }
    assert!(html.contains(&format!(r#"action="/connect/{id}/bank""#)));

    // Choosing a bank redirects to the confirmation, which names it.
    let (status, location, _) = sandbox
        .submit(
            &format!("/connect/{id}/bank"),
            &[("provider", "sandbox-barclays")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let confirm = location.unwrap();
    assert!(confirm.contains("step=confirm"), "{confirm}");
    let (_, html) = sandbox.page(&confirm).await;
    assert!(html.contains(r#"id="step-confirm""#));
    assert!(html.contains("Barclays (Sandbox)"));
    assert!(html.contains(r#"id="approve""#) && html.contains(r#"id="deny""#));
    assert!(html.contains(r#"id="change-bank""#));

    let (status, location, _) = sandbox
        .submit(
            &format!("/connect/{id}/decision"),
            &[("decision", "approve")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.unwrap();
    assert!(
        location.starts_with("https://app.example/callback/sess-1?"),
        "{location}"
    );
    assert_eq!(
        query_pairs(&location),
        pairs(&[("state", "st+1"), ("lang", "en"), ("fx_consent", id)])
    );
    assert!(
        location.contains("state=st%2B1"),
        "original encoding kept: {location}"
    );

    let (_, consent) = sandbox.get_json(&format!("/consents/{id}")).await;
    assert_eq!(consent["status"], "authorized");
    assert_eq!(consent["provider"], "sandbox-barclays");
    let authed_at = consent["authed_at"].as_str().expect("authed_at set");
    let expiry = consent["expiry_date"].as_str().expect("expiry_date set");
    let days = |text: &str| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
            / 86_400
    };
    assert_eq!(days(expiry) - days(authed_at), 90);
}

#[tokio::test]
async fn denying_returns_access_denied_and_cancels_the_consent() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox
        .pending_consent(&[("provider", "sandbox-natwest")])
        .await;
    let id = consent["id"].as_str().unwrap();
    let (status, location, _) = sandbox
        .submit(&format!("/connect/{id}/decision"), &[("decision", "deny")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.unwrap();
    assert_eq!(
        query_pairs(&location),
        pairs(&[
            ("state", "st+1"),
            ("lang", "en"),
            ("error", "access_denied"),
            ("error_code", "user_denied"),
            ("fx_consent", id),
        ])
    );
    let (_, consent) = sandbox.get_json(&format!("/consents/{id}")).await;
    assert_eq!(consent["status"], "canceled");
    assert!(consent["authed_at"].is_null());
}

#[tokio::test]
async fn a_consent_that_is_not_pending_shows_a_page_instead_of_redirecting() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.authorized_consent(&[]).await;
    let (status, html) = sandbox.page(&sandbox.page_path(&consent)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("This consent is authorized"));
    assert!(!html.contains(r#"id="approve""#));

    // A second approval of the same consent changes nothing.
    let id = consent["id"].as_str().unwrap();
    let (status, location, _) = sandbox
        .submit(&format!("/connect/{id}/decision"), &[("decision", "deny")])
        .await;
    assert_eq!((status, location), (StatusCode::CONFLICT, None));
    assert_eq!(
        sandbox.get_json(&format!("/consents/{id}")).await.1["status"],
        "authorized"
    );

    let (_, new_consent) = sandbox.post_json_answer("/consents", &[]).await;
    let (status, html) = sandbox.page(&sandbox.page_path(&new_consent)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("This consent is new"));

    let (status, html) = sandbox.page("/connect/bc_unknown").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Consent not found"));
}

#[tokio::test]
async fn a_provider_set_by_the_api_skips_the_bank_choice() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox
        .pending_consent(&[("provider", "sandbox-monzo")])
        .await;
    let page = sandbox.page_path(&consent);
    let (_, html) = sandbox.page(&format!("{page}?skip_info=true")).await;
    assert!(html.contains(r#"id="step-confirm""#), "{html}");
    assert!(html.contains("Monzo (Sandbox)"));
    assert!(!html.contains(r#"id="change-bank""#));
    let (_, html) = sandbox.page(&format!("{page}?step=bank")).await;
    assert!(html.contains(r#"id="step-confirm""#));

    let id = consent["id"].as_str().unwrap();
    let (status, _, _) = sandbox
        .submit(
            &format!("/connect/{id}/bank"),
            &[("provider", "sandbox-hsbc")],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn template_changes_the_name_and_colour_and_an_unknown_one_stops_the_page() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.pending_consent(&[]).await;
    let page = sandbox.page_path(&consent);

    let (_, plain) = sandbox.page(&page).await;
    assert!(plain.contains(r#"id="brand-name">Finexer<"#));
    assert!(!plain.contains("Acme Money"));

    let (status, acme) = sandbox.page(&format!("{page}?template=acme")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(acme.contains(r#"id="brand-name">Acme Money<"#));
    assert!(acme.contains("--accent: #1a7f37"));
    assert!(acme.contains(r#"data-template="acme""#));

    let (status, html) = sandbox
        .page(&format!(
            "{page}?template=%3Cscript%3Ealert(1)%3C/script%3E"
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("This page cannot be opened"));
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped"
    );
    assert!(!html.contains("<script>"));
}

#[tokio::test]
async fn skip_info_and_skip_qr_hide_their_screens_and_survive_every_step() {
    let sandbox = TestSandbox::start().await;
    let consent = sandbox.pending_consent(&[]).await;
    let id = consent["id"].as_str().unwrap();
    let page = sandbox.page_path(&consent);

    let (_, html) = sandbox
        .page(&format!("{page}?skip_info=true&skip_qr=true&template=acme"))
        .await;
    assert!(html.contains(r#"id="step-bank""#), "info screen skipped");
    assert!(!html.contains(r#"id="continue""#));
    assert!(!html.contains(r#"id="qr-box""#) && !html.contains("Open on your phone"));
    for hidden in [
        r#"name="template" value="acme""#,
        r#"name="skip_info" value="true""#,
        r#"name="skip_qr" value="true""#,
    ] {
        assert!(html.contains(hidden), "{hidden}");
    }

    // The form posts the options back; the next step keeps them.
    let (_, location, _) = sandbox
        .submit(
            &format!("/connect/{id}/bank"),
            &[
                ("template", "acme"),
                ("skip_info", "true"),
                ("skip_qr", "true"),
                ("provider", "sandbox-lloyds"),
            ],
        )
        .await;
    let confirm = location.unwrap();
    let (_, html) = sandbox.page(&confirm).await;
    assert!(html.contains(r#"id="step-confirm""#));
    assert!(html.contains("Acme Money") && !html.contains(r#"id="qr-box""#));
    assert!(html.contains(r#"name="template" value="acme""#));

    // Without the options the info screen's Continue carries them too.
    let (_, html) = sandbox.page(&format!("{page}?template=acme")).await;
    assert!(html.contains(r#"id="step-info""#) && html.contains(r#"id="qr-box""#));
    assert!(html.contains(r#"name="template" value="acme""#));
    assert!(html.contains(r#"name="step" value="bank""#));
}

#[tokio::test]
async fn without_a_return_url_the_sandbox_shows_its_own_confirmation() {
    let sandbox = TestSandbox::start().await;
    let customer = sandbox.create_customer().await;
    let (_, consent) = sandbox
        .post_json_answer(
            "/consents",
            &[
                ("customer", customer.as_str()),
                ("provider", "sandbox-lloyds"),
            ],
        )
        .await;
    let id = consent["id"].as_str().unwrap();
    let (status, location, html) = sandbox
        .submit(
            &format!("/connect/{id}/decision"),
            &[("decision", "approve")],
        )
        .await;
    assert_eq!((status, location), (StatusCode::OK, None));
    assert!(html.contains(r#"id="step-done""#) && html.contains("Bank connected"));
}
