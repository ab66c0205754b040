//! The code in the fragment, and the proof a link created with a
//! `code_challenge` needs besides it: the starting tab's `code_verifier`, or
//! the person's explicit yes (`confirmed_by_user`).

use serde_json::{Value, json};
use shared::store::ConfirmedBy;

use crate::support::*;

/// How the consent's confirmation entry says it was proved, if it has one.
fn confirmed_by(view: &ConsentView) -> Option<ConfirmedBy> {
    let entries: Vec<_> = view
        .history
        .iter()
        .filter(|h| h.source == ChangeSource::Confirm)
        .collect();
    assert!(entries.len() <= 1, "one confirmation entry: {entries:?}");
    entries
        .first()
        .map(|h| h.confirmed_by.expect("it says how"))
}

fn assert_bad_request(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["type"], "/problems/bad-request", "{what}: {body}");
}

#[tokio::test]
async fn the_code_comes_back_in_the_fragment_and_a_reload_never_shows_it() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("uma").await;
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;
    let query = format!("fx_consent={consent_id}&state={state}");
    let back = location(&env.callback(&query).await);
    assert_eq!(
        back.as_str().split_once('#').unwrap().0,
        format!("{FRONTEND}?consent_id={consent_id}&status=authorized")
    );
    let code = fragment_code(&back).expect("the code is in the fragment");
    assert_eq!(back.fragment(), Some(format!("code={code}").as_str()));

    // A reload: the same outcome, no code anywhere.
    for _ in 0..2 {
        let again = location(&env.callback(&query).await);
        assert_eq!(
            again.as_str(),
            format!("{FRONTEND}?consent_id={consent_id}&status=authorized")
        );
        assert!(!again.as_str().contains(&code));
    }
    let (status, _) = env.confirm("uma", &consent_id, &code).await;
    assert_eq!(status, 200, "the code the first answer carried works");

    // A denial carries no fragment either.
    let (denied, state) = env.link("uma").await;
    env.finexer_says(&denied, AtFinexer::Canceled).await;
    let back = location(
        &env.callback(&format!(
            "fx_consent={denied}&state={state}&error=access_denied"
        ))
        .await,
    );
    assert_eq!(back.fragment(), None, "{back}");
    assert_eq!(query_of(&back)["status"], "canceled");
}

#[tokio::test]
async fn a_challenged_link_confirmed_with_its_verifier_says_verifier() {
    let env = TestEnv::start().await;
    let verifier = verifier("vera's tab");
    let (consent_id, state) = env
        .link_with(
            "vera",
            json!({"code_challenge": challenge(&verifier), "code_challenge_method": "S256"}),
        )
        .await;
    // The record keeps the challenge, nothing else of the proof.
    assert_eq!(
        env.record(&consent_id).await.code_challenge,
        Some(challenge(&verifier))
    );
    let code = env.approve(&consent_id, &state).await;
    let waiting = env.view("vera", &consent_id).await;
    assert_eq!(waiting.bank_name.as_deref(), Some("Barclays (Sandbox)"));
    assert_eq!(waiting.provider.as_deref(), Some(BANK));

    let body = json!({"code": code, "code_verifier": verifier});
    let (status, answer) = env.confirm_with("vera", &consent_id, body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let confirmed: ConsentView = serde_json::from_value(answer).unwrap();
    assert!(confirmed.confirmed_at.is_some());
    assert_eq!(confirmed_by(&confirmed), Some(ConfirmedBy::Verifier));
    assert_eq!(confirmed.bank_name.as_deref(), Some("Barclays (Sandbox)"));
    let item = env
        .item(&format!("CONSENT#{consent_id}"), "CONSENT")
        .await
        .unwrap();
    assert!(!format!("{item:?}").contains(&verifier), "never stored");

    // A repeat by the owner, with either proof: the same answer, no new entry.
    for repeat in [body, json!({"code": code, "confirmed_by_user": true})] {
        let (status, again) = env.confirm_with("vera", &consent_id, repeat).await;
        assert_eq!(status, 200, "{again}");
        let again: ConsentView = serde_json::from_value(again).unwrap();
        assert_eq!(again, confirmed);
    }
    // Without a proof even a repeat is refused.
    let (status, problem) = env.confirm("vera", &consent_id, &code).await;
    assert_bad_request(status, &problem, "a repeat without a proof");
    // The list shows the bank's name too.
    let (_, list) = env.consents("vera", "/consents").await;
    assert_eq!(list["data"][0]["bank_name"], "Barclays (Sandbox)");
}

#[tokio::test]
async fn confirmed_by_user_confirms_and_says_user() {
    let env = TestEnv::start().await;
    let verifier = verifier("the tab that started it");
    let (consent_id, state) = env.challenged_link("walt", &verifier).await;
    let code = env.approve(&consent_id, &state).await;
    // A new tab, without the verifier: the person said yes.
    let (status, answer) = env
        .confirm_with(
            "walt",
            &consent_id,
            json!({"code": code, "confirmed_by_user": true}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let view = env.view("walt", &consent_id).await;
    assert!(view.confirmed_at.is_some());
    assert_eq!(confirmed_by(&view), Some(ConfirmedBy::User));
    let accounts: Accounts = env
        .read("walt", &format!("/consents/{consent_id}/accounts"))
        .await
        .ok();
    assert!(!accounts.data.is_empty(), "its data is served");
}

#[tokio::test]
async fn a_wrong_verifier_changes_nothing_and_a_correct_retry_works() {
    let env = TestEnv::start().await;
    let verifier = verifier("xena's tab");
    let (consent_id, state) = env.challenged_link("xena", &verifier).await;
    let code = env.approve(&consent_id, &state).await;
    let before = env.record(&consent_id).await;

    let wrong = super::support::verifier("another tab");
    let (status, problem) = env
        .confirm_with(
            "xena",
            &consent_id,
            json!({"code": code, "code_verifier": wrong}),
        )
        .await;
    assert_bad_request(status, &problem, "a wrong verifier");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("code_verifier"),
        "{problem}"
    );
    assert_eq!(env.record(&consent_id).await, before, "nothing changed");

    let (status, answer) = env
        .confirm_with(
            "xena",
            &consent_id,
            json!({"code": code, "code_verifier": verifier}),
        )
        .await;
    assert_eq!(status, 200, "the code is still usable: {answer}");
    let view = env.view("xena", &consent_id).await;
    assert_eq!(confirmed_by(&view), Some(ConfirmedBy::Verifier));
}

#[tokio::test]
async fn a_challenged_link_refuses_a_missing_or_malformed_proof() {
    let env = TestEnv::start().await;
    let verifier = verifier("yuri's tab");
    let (consent_id, state) = env.challenged_link("yuri", &verifier).await;
    let code = env.approve(&consent_id, &state).await;
    let before = env.record(&consent_id).await;
    let refused = [
        ("no proof", json!({"code": code})),
        (
            "a null verifier",
            json!({"code": code, "code_verifier": null}),
        ),
        (
            "a short verifier",
            json!({"code": code, "code_verifier": &verifier[..42]}),
        ),
        (
            "a long verifier",
            json!({"code": code, "code_verifier": "a".repeat(129)}),
        ),
        (
            "a verifier outside the unreserved characters",
            json!({"code": code, "code_verifier": format!("{}+", &verifier[..44])}),
        ),
        (
            "both proofs",
            json!({"code": code, "code_verifier": verifier, "confirmed_by_user": true}),
        ),
        (
            "confirmed_by_user false",
            json!({"code": code, "confirmed_by_user": false}),
        ),
        (
            "confirmed_by_user a string",
            json!({"code": code, "confirmed_by_user": "true"}),
        ),
        ("a verifier but no code", json!({"code_verifier": verifier})),
    ];
    for (what, body) in refused {
        let (status, problem) = env.confirm_with("yuri", &consent_id, body).await;
        assert_bad_request(status, &problem, what);
        assert_eq!(env.record(&consent_id).await, before, "{what}: unchanged");
    }
    // The code stays usable: with its proof it confirms.
    let (status, answer) = env
        .confirm_with(
            "yuri",
            &consent_id,
            json!({"code": code, "code_verifier": verifier}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn verifiers_of_43_and_128_characters_are_accepted() {
    let env = TestEnv::start().await;
    for verifier in ["a".repeat(43), "Zz0-._~".repeat(19)[..128].to_owned()] {
        let (consent_id, state) = env.challenged_link("zoe", &verifier).await;
        let code = env.approve(&consent_id, &state).await;
        let (status, answer) = env
            .confirm_with(
                "zoe",
                &consent_id,
                json!({"code": code, "code_verifier": verifier}),
            )
            .await;
        assert_eq!(status, 200, "{} characters: {answer}", verifier.len());
    }
}

#[tokio::test]
async fn malformed_challenges_are_refused_when_the_link_is_created() {
    let env = TestEnv::start().await;
    let good = challenge(&verifier("ada"));
    let refused = [
        json!({"code_challenge": &good[..42]}),
        json!({"code_challenge": format!("{good}A")}),
        json!({"code_challenge": format!("{}=", &good[..42])}),
        json!({"code_challenge": format!("{}+", &good[..42])}),
        json!({"code_challenge": ""}),
        json!({"code_challenge": 43}),
        json!({"code_challenge": good, "code_challenge_method": "plain"}),
        json!({"code_challenge": good, "code_challenge_method": "s256"}),
        json!({"code_challenge_method": "S256"}),
    ];
    for body in refused {
        let (status, problem) = env.create_link("ada", body.clone()).await;
        assert_bad_request(status, &problem, &body.to_string());
    }
    assert!(env.finexer_calls().await.is_empty(), "Finexer not asked");
    let (status, created) = env
        .create_link(
            "ada",
            json!({"code_challenge": good, "code_challenge_method": "S256"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
}

#[tokio::test]
async fn a_link_without_a_challenge_confirms_with_the_code_as_before() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("bob").await;
    assert_eq!(env.record(&consent_id).await.code_challenge, None);
    let code = env.approve(&consent_id, &state).await;
    // A verifier has nothing to be checked against.
    let (status, problem) = env
        .confirm_with(
            "bob",
            &consent_id,
            json!({"code": code, "code_verifier": verifier("bob")}),
        )
        .await;
    assert_bad_request(status, &problem, "a verifier without a challenge");

    let (status, answer) = env.confirm("bob", &consent_id, &code).await;
    assert_eq!(status, 200, "{answer}");
    let view = env.view("bob", &consent_id).await;
    assert_eq!(confirmed_by(&view), Some(ConfirmedBy::Code));
    let (status, _) = env.confirm("bob", &consent_id, &code).await;
    assert_eq!(status, 200, "a repeat, as before");
}

#[tokio::test]
async fn a_bank_name_finexer_cannot_give_is_left_out() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("cleo").await;
    env.finexer_faults(&[failing("GET", "/providers", 500)])
        .await;
    let code = env.approve(&consent_id, &state).await;
    let view = env.view("cleo", &consent_id).await;
    assert_eq!(view.bank_name, None);
    assert_eq!(view.provider.as_deref(), Some(BANK));
    let (status, _) = env.confirm("cleo", &consent_id, &code).await;
    assert_eq!(status, 200, "the journey does not depend on the name");
}

#[tokio::test]
async fn the_provider_list_is_read_once_for_many_approvals() {
    let env = TestEnv::start().await;
    for user in ["dina", "eli"] {
        let (consent_id, state) = env.link(user).await;
        env.approve(&consent_id, &state).await;
        let view = env.view(user, &consent_id).await;
        assert_eq!(view.bank_name.as_deref(), Some("Barclays (Sandbox)"));
    }
    let reads = env
        .finexer_calls()
        .await
        .iter()
        .filter(|call| call.starts_with("GET /providers"))
        .count();
    assert_eq!(reads, 1, "the names are kept a while");
}
