//! A consent counts only once the person who signed in confirms it: the
//! injection attack, racing confirmations, which accounts are served, and
//! the callback without a state, against the real stack.

use std::collections::HashMap;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn a_link_completed_in_another_users_browser_is_revoked() {
    let stack = Stack::start().await;
    let attacker = stack.token("mallory").await;
    let victim = stack.token("victor").await;

    // Mallory creates the link; Victor's browser completes the bank journey
    // and comes back with the code; Victor's own session confirms.
    let (consent_id, _) = stack.link(&attacker).await;
    let back = stack.approve(&consent_id).await;
    assert_eq!(back["status"], "authorized");
    let (status, _) = stack.confirm(&victim, &consent_id, &back["code"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "as for an unknown consent");
    assert_eq!(stack.finexer_status(&consent_id).await, "canceled");
    let record = stack.consent(&attacker, &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(
        record.revoke_reason.as_deref(),
        Some("confirmed_by_another_user")
    );

    // Neither of them sees the victim's accounts.
    for token in [&attacker, &victim] {
        assert_eq!(
            stack.list::<Value>(token, "/accounts").await,
            Vec::<Value>::new()
        );
    }
    let path = format!("/consents/{consent_id}/accounts");
    assert_eq!(
        stack.api(&attacker, "GET", &path).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        stack.api(&victim, "GET", &path).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_link_owner_cannot_confirm_without_the_code() {
    let stack = Stack::start().await;
    let attacker = stack.token("mallory").await;
    let (consent_id, _) = stack.link(&attacker).await;
    // The victim's browser comes back with the code; Mallory never sees it.
    let back = stack.approve(&consent_id).await;
    let guessed = "A".repeat(back["code"].len());
    let (status, _) = stack.confirm(&attacker, &consent_id, &guessed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let record = stack.consent(&attacker, &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Authorized);
    assert!(record.confirmed_at.is_none());
    let (status, _) = stack
        .api(
            &attacker,
            "GET",
            &format!("/consents/{consent_id}/accounts"),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "confirm first");
    assert_eq!(
        stack.list::<Value>(&attacker, "/accounts").await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn fifty_confirms_with_one_code_confirm_once() {
    let stack = Stack::start().await;
    let token = stack.token("olivia").await;
    let (consent_id, _) = stack.link(&token).await;
    let code = stack.approve(&consent_id).await["code"].clone();
    let answers = join_all((0..50).map(|_| stack.confirm(&token, &consent_id, &code))).await;
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut confirmed_at = Vec::new();
    for (status, body) in &answers {
        *statuses.entry(status.as_u16()).or_default() += 1;
        if *status == StatusCode::OK {
            let view: ConsentView = serde_json::from_value(body.clone()).expect("a ConsentView");
            assert!(view.confirmed_at.is_some(), "{body}");
            confirmed_at.push(view.confirmed_at);
        }
    }
    assert!(
        statuses.keys().all(|s| *s == 200 || *s == 409),
        "the same answer or a clear 409: {statuses:?}"
    );
    assert!(
        confirmed_at.windows(2).all(|w| w[0] == w[1]),
        "every 200 tells of the one confirmation"
    );
    let record = stack.consent(&token, &consent_id).await;
    assert_eq!(
        changes_by(&record, ChangeSource::Confirm),
        1,
        "exactly one request confirmed it"
    );
}

#[tokio::test]
async fn accounts_come_only_from_confirmed_consents_in_our_records() {
    let stack = Stack::start().await;
    let token = stack.token("priya").await;
    let confirmed = stack.confirmed_link(&token).await;
    let (unconfirmed, _) = stack.link(&token).await;
    stack.approve(&unconfirmed).await;
    // Confirmed, then a revoke whose Finexer call fails: revoke_pending,
    // though Finexer still lists it as authorized.
    let pending_revoke = stack.confirmed_link(&token).await;
    stack
        .fault(json!({"method": "POST", "path_prefix": format!("/consents/{pending_revoke}/revoke"), "status": 500}))
        .await;
    let (status, _) = stack
        .api(
            &token,
            "POST",
            &format!("/consents/{pending_revoke}/revoke"),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    stack.clear_faults().await;
    assert_eq!(
        stack.consent(&token, &pending_revoke).await.status,
        ConsentStatus::RevokePending
    );
    for id in [&confirmed, &unconfirmed, &pending_revoke] {
        assert_eq!(stack.finexer_status(id).await, "authorized", "{id}");
    }

    let accounts: Vec<Value> = stack.list(&token, "/accounts").await;
    assert!(!accounts.is_empty(), "the confirmed consent has accounts");
    for account in accounts {
        assert_eq!(account["consent"], confirmed.as_str(), "{account}");
    }
}

#[tokio::test]
async fn a_callback_without_state_reveals_nothing() {
    let stack = Stack::start().await;
    let token = stack.token("quinn").await;
    let (pending, _) = stack.link(&token).await;
    let authorized = stack.confirmed_link(&token).await;
    let canceled = stack.confirmed_link(&token).await;
    let (status, _) = stack
        .api(&token, "POST", &format!("/consents/{canceled}/revoke"))
        .await;
    assert_eq!(status, StatusCode::OK);

    let ids = ["bc_unknown0000", &pending, &authorized, &canceled];
    let calls_before = stack.finexer_calls().await.len();
    let mut pages = Vec::new();
    for id in ids {
        for suffix in ["", "&error=access_denied"] {
            let response = stack
                .get(&format!("{}/callback?fx_consent={id}{suffix}", stack.base))
                .await;
            let status = response.status();
            let location = response.headers().get("location").cloned();
            let body = response.bytes().await.unwrap();
            assert!(location.is_none(), "{id}: no redirect");
            pages.push((id, status, body));
        }
    }
    let (_, first_status, first_body) = &pages[0];
    assert_eq!(*first_status, StatusCode::OK);
    for (id, status, body) in &pages {
        assert_eq!(status, first_status, "{id}");
        assert_eq!(body, first_body, "{id}: byte-identical page");
    }
    // Finexer is asked about the pending consent only (once per probe).
    let calls = stack.finexer_calls().await;
    let asked: Vec<&String> = calls[calls_before..]
        .iter()
        .filter(|c| c.starts_with("GET /consents/"))
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked.iter().all(|c| c.ends_with(pending.as_str())));
    for (id, status) in [
        (&pending, ConsentStatus::Pending),
        (&authorized, ConsentStatus::Authorized),
        (&canceled, ConsentStatus::Canceled),
    ] {
        assert_eq!(stack.consent(&token, id).await.status, status, "unchanged");
    }
}

/// Someone else completed the owner's pending link at their own bank (a
/// shared consent page, a QR code) and forwarded the return URL: the owner's
/// session, in a tab without the link's verifier, cannot confirm silently.
#[tokio::test]
async fn a_forwarded_return_url_is_confirmed_only_after_the_owners_yes() {
    use connect_testkit::pkce::{challenge, verifier};
    use shared::store::ConfirmedBy;

    let stack = Stack::start().await;
    let owner = stack.token("wendy").await;
    let own_tab = verifier("wendy's tab");
    let response = stack
        .create_link(
            &owner,
            json!({"provider": "sandbox-barclays", "skip_info": true,
                   "code_challenge": challenge(&own_tab), "code_challenge_method": "S256"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let consent_id = response.json::<Value>().await.unwrap()["consent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let forwarded = stack.approve(&consent_id).await;
    let code = forwarded["code"].clone();

    // The new tab has the code only: refused, and nothing changes.
    let (status, problem) = stack.confirm(&owner, &consent_id, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["type"], "/problems/bad-request");
    let waiting = stack.consent(&owner, &consent_id).await;
    assert!(waiting.confirmed_at.is_none());
    assert_eq!(changes_by(&waiting, ChangeSource::Confirm), 0);
    // What the tab shows before asking: the bank's name.
    assert_eq!(waiting.bank_name.as_deref(), Some("Barclays (Sandbox)"));
    let (status, _) = stack
        .api(&owner, "GET", &format!("/consents/{consent_id}/accounts"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "not confirmed, no data");

    // The owner clicks "Connect Barclays": confirmed, and the history says so.
    let (status, body) = stack
        .confirm_with(
            &owner,
            &consent_id,
            json!({"code": code, "confirmed_by_user": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let confirmed = stack.consent(&owner, &consent_id).await;
    assert!(confirmed.confirmed_at.is_some());
    let entry = confirmed
        .history
        .iter()
        .find(|h| h.source == ChangeSource::Confirm)
        .expect("a confirmation entry");
    assert_eq!(entry.confirmed_by, Some(ConfirmedBy::User));
}
