//! The journey as users live it: connect, come back, see it, revoke it.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn approve_journey_from_link_to_revocation() {
    let env = TestEnv::start().await;

    // create-link
    let link = env
        .create_link_reply(
            "alice",
            json!({"template": "acme", "skip_info": true, "skip_qr": false}),
        )
        .await
        .ok();
    let consent_id = link.consent_id.as_str();
    let page = url::Url::parse(&link.consent_url).unwrap();
    assert_eq!(page.path(), format!("/connect/{consent_id}"));
    let options = query_of(&page);
    assert_eq!(options["template"], "acme");
    assert_eq!(options["skip_info"], "true");
    assert_eq!(options["skip_qr"], "false");
    assert!(link.expires_at > Timestamp::now());

    // What Finexer was asked: a customer for alice, then a consent for it.
    let calls = env.finexer_calls().await;
    assert_eq!(calls, ["POST /customers", "POST /consents"]);
    let state = env.state_sent_to_finexer(consent_id).await;

    // Finexer sends the browser back; the callback confirms and redirects.
    env.finexer_says(consent_id, AtFinexer::Authorized).await;
    let response = env
        .callback(&format!("fx_consent={consent_id}&state={state}"))
        .await;
    let back = location(&response);
    assert_eq!(back.origin().ascii_serialization(), "http://127.0.0.1:3000");
    assert_eq!(back.path(), "/connected");
    let result = query_of(&back);
    assert_eq!(result["consent_id"], consent_id);
    assert_eq!(result["status"], "authorized");
    assert!(
        !result.contains_key("code"),
        "the code is never in the query"
    );
    let code = &fragment_code(&back).expect("the code is in the fragment");
    assert_eq!(code.len(), 43, "256 random bits, base64url");
    assert!(
        env.finexer_calls()
            .await
            .contains(&format!("GET /consents/{consent_id}")),
        "the callback confirms with Finexer"
    );
    // The code is stored only as its hash.
    let item = env
        .item(&format!("CONSENT#{consent_id}"), "CONSENT")
        .await
        .unwrap();
    assert!(
        !format!("{item:?}").contains(code.as_str()),
        "the code itself is not stored"
    );

    // Until its owner confirms it, the consent's data is not served.
    let accounts_path = format!("/consents/{consent_id}/accounts");
    let problem = env
        .read::<Accounts>("alice", &accounts_path)
        .await
        .problem();
    assert_eq!(problem.status, 409, "confirm first");
    let all: Accounts = env.read("alice", "/accounts").await.ok();
    assert_eq!(all.data, [], "an unconfirmed consent is left out");

    // The owner confirms with the code; a repeat gets the same answer.
    let (status, confirmed) = env.confirm("alice", consent_id, code).await;
    assert_eq!(status, 200, "{confirmed}");
    let confirmed: ConsentView = serde_json::from_value(confirmed).unwrap();
    assert!(confirmed.confirmed_at.is_some());
    let (status, again) = env.confirm("alice", consent_id, code).await;
    assert_eq!(status, 200);
    let again: ConsentView = serde_json::from_value(again).unwrap();
    assert_eq!(again, confirmed, "a repeat changes nothing");

    // consents shows it authorized, with its history.
    let record = env.view("alice", consent_id).await;
    assert_eq!(record.status, ConsentStatus::Authorized);
    // Provider and times are Finexer's, as it answered the callback's read.
    let at_finexer = env.at_finexer(consent_id).await;
    assert_eq!(record.provider.as_deref(), Some(BANK));
    let read = |at: Option<finexer_sandbox::clock::Timestamp>| {
        at.map(|at| Timestamp::parse(&at.to_string()).unwrap())
    };
    assert_eq!(record.authorized_at, read(at_finexer.authed_at));
    assert_eq!(record.expires_at, read(at_finexer.expiry_date));
    assert_eq!(
        history_of(&record),
        [
            (None, ConsentStatus::Pending, ChangeSource::Create),
            (
                Some(ConsentStatus::Pending),
                ConsentStatus::Authorized,
                ChangeSource::Callback
            ),
            (
                Some(ConsentStatus::Authorized),
                ConsentStatus::Authorized,
                ChangeSource::Confirm
            ),
        ]
    );
    let (_, raw) = env
        .consents("alice", &format!("/consents/{consent_id}"))
        .await;
    for internal in ["state_id", "confirm_code_hash"] {
        assert!(raw.get(internal).is_none(), "{internal} not shown");
    }

    let list: ConsentPage = env.read("alice", "/consents").await.ok();
    assert_eq!(list.data[0].consent_id, consent_id);

    let accounts: Accounts = env.read("alice", &accounts_path).await.ok();
    assert!(!accounts.data.is_empty(), "Finexer lists at least one");
    for account in &accounts.data {
        assert_eq!(account.consent, consent_id);
    }
    let all: Accounts = env.read("alice", "/accounts").await.ok();
    assert_eq!(all.data, accounts.data, "the one consent's");

    // revoke
    let (status, revoked) = env.revoke("alice", consent_id).await;
    assert_eq!(status, 200, "{revoked}");
    let revoked: ConsentView = serde_json::from_value(revoked).unwrap();
    assert_eq!(revoked.status, ConsentStatus::Canceled);
    assert!(revoked.revoked_at.is_some());
    let sources: Vec<(ConsentStatus, ChangeSource)> = history_of(&revoked)
        .into_iter()
        .map(|(_, to, source)| (to, source))
        .collect();
    assert_eq!(
        sources,
        [
            (ConsentStatus::Pending, ChangeSource::Create),
            (ConsentStatus::Authorized, ChangeSource::Callback),
            (ConsentStatus::Authorized, ChangeSource::Confirm),
            (ConsentStatus::RevokePending, ChangeSource::Revoke),
            (ConsentStatus::Canceled, ChangeSource::Revoke)
        ]
    );
    assert!(
        env.finexer_calls()
            .await
            .contains(&format!("POST /consents/{consent_id}/revoke"))
    );
    assert_eq!(env.at_finexer(consent_id).await.status, AtFinexer::Canceled);

    // Revoking twice is fine and changes nothing more.
    let (status, again) = env.revoke("alice", consent_id).await;
    assert_eq!(status, 200);
    let again: ConsentView = serde_json::from_value(again).unwrap();
    assert_eq!(again.history.len(), 5);

    // The revoked consent has no accounts to show.
    let problem = env
        .read::<Accounts>("alice", &accounts_path)
        .await
        .problem();
    assert_eq!(problem.status, 409);
}

#[tokio::test]
async fn the_customer_is_created_once_and_reused() {
    let env = TestEnv::start().await;
    let (first, _) = env.link("bob").await;
    let (second, _) = env.link("bob").await;
    let calls = env.finexer_calls().await;
    assert_eq!(calls.iter().filter(|c| *c == "POST /customers").count(), 1);
    let customer = env.item("USER#bob", "CUSTOMER").await.unwrap();
    let customer_id = customer["customer_id"].as_s().unwrap();
    assert!(customer_id.starts_with("cus_"), "{customer_id}");
    for consent_id in [&first, &second] {
        assert_eq!(
            env.at_finexer(consent_id).await.customer.as_ref(),
            Some(customer_id),
            "both consents for the one customer"
        );
    }
    assert!(!customer.contains_key("lease_until"));

    let (_, list) = env.consents("bob", "/consents").await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["consent_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second, first], "newest first");
}

#[tokio::test]
async fn concurrent_first_links_create_one_customer() {
    let env = TestEnv::start().await;
    // As many as one user may have pending (MAX_PENDING_LINKS).
    let links = (0..5).map(|_| env.create_link("carol", json!({})));
    let results = futures::future::join_all(links).await;
    for (status, body) in &results {
        assert_eq!(*status, 201, "{body}");
    }
    let calls = env.finexer_calls().await;
    assert_eq!(
        calls.iter().filter(|c| *c == "POST /customers").count(),
        1,
        "{calls:?}"
    );
    assert_eq!(calls.iter().filter(|c| *c == "POST /consents").count(), 5);
}

#[tokio::test]
async fn denial_with_state_cancels_and_returns_the_user() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("dave").await;
    env.finexer_says(&consent_id, AtFinexer::Canceled).await;
    let response = env
        .callback(&format!(
            "fx_consent={consent_id}&state={state}&error=access_denied&error_code=user_denied"
        ))
        .await;
    let result = query_of(&location(&response));
    assert_eq!(result["status"], "canceled");
    assert_eq!(result["error"], "access_denied");
    let record = env.view("dave", &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert!(record.revoked_at.is_none());
    let state_item = env
        .item(
            &format!("STATE#{}", state_id_of(&env, &consent_id).await),
            "STATE",
        )
        .await
        .unwrap();
    assert!(state_item.contains_key("used_at"), "the state is consumed");
}

#[tokio::test]
async fn denial_without_state_is_confirmed_with_finexer() {
    let env = TestEnv::start().await;
    let (consent_id, _) = env.link("erin").await;
    let stateless = format!("fx_consent={consent_id}&error=access_denied");

    // Finexer does not (yet) say canceled: nothing changes.
    let first = env.callback(&stateless).await;
    assert_eq!(first.status(), 200);
    let record = env.view("erin", &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Pending);

    // Finexer says canceled: recorded, and the page is the same one.
    env.finexer_says(&consent_id, AtFinexer::Canceled).await;
    let second = env.callback(&stateless).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.body(), first.body(), "the page never differs");
    assert!(second.headers().get("location").is_none());
    let record = env.view("erin", &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(record.history[1].source, ChangeSource::Callback);
}

#[tokio::test]
async fn an_approval_without_state_is_not_recorded() {
    let env = TestEnv::start().await;
    let (consent_id, _) = env.link("erin2").await;
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;
    for query in [
        format!("fx_consent={consent_id}"),
        format!("fx_consent={consent_id}&error=access_denied"),
    ] {
        let response = env.callback(&query).await;
        assert_eq!(response.status(), 200, "{query}");
        assert!(response.headers().get("location").is_none());
    }
    let record = env.view("erin2", &consent_id).await;
    assert_eq!(
        record.status,
        ConsentStatus::Pending,
        "an approval needs the state"
    );
}

#[tokio::test]
async fn a_reload_of_the_callback_gets_the_same_result() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("frank").await;
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;
    let query = format!("fx_consent={consent_id}&state={state}");
    let first_url = location(&env.callback(&query).await);
    let second_url = location(&env.callback(&query).await);
    assert!(fragment_code(&first_url).is_some());
    assert_eq!(
        second_url.fragment(),
        None,
        "the one code went out with the first answer"
    );
    let (first, second) = (query_of(&first_url), query_of(&second_url));
    assert!(!first.contains_key("code") && !second.contains_key("code"));
    for name in ["consent_id", "status"] {
        assert_eq!(first[name], second[name]);
    }
    let record = env.view("frank", &consent_id).await;
    assert_eq!(record.history.len(), 2, "no second change");
}

#[tokio::test]
async fn return_to_picks_an_allow_listed_frontend() {
    let env = TestEnv::start().await;
    let (status, link) = env
        .create_link("gina", json!({"return_to": OTHER_FRONTEND}))
        .await;
    assert_eq!(status, 201);
    let consent_id = link["consent_id"].as_str().unwrap();
    let state = env.state_sent_to_finexer(consent_id).await;
    env.finexer_says(consent_id, AtFinexer::Authorized).await;
    let back = location(
        &env.callback(&format!("fx_consent={consent_id}&state={state}"))
            .await,
    );
    assert_eq!(back.host_str(), Some("app.example.com"));
    assert_eq!(back.path(), "/return");
}

#[tokio::test]
async fn a_preselected_provider_is_passed_to_finexer() {
    let env = TestEnv::start().await;
    let (status, link) = env
        .create_link("hal", json!({"provider": "sandbox-lloyds"}))
        .await;
    assert_eq!(status, 201);
    let requests = env.finexer_requests().await;
    let create = requests
        .iter()
        .find(|r| r.call() == "POST /consents")
        .unwrap();
    let form = create.body.clone().unwrap();
    assert!(form.contains("provider=sandbox-lloyds"), "{form}");
    assert!(form.contains("scopes%5B%5D=accounts"), "{form}");
    let customer = env.item("USER#hal", "CUSTOMER").await.unwrap();
    assert_eq!(
        create.form_field("customer").as_deref(),
        Some(customer["customer_id"].as_s().unwrap().as_str()),
        "{form}"
    );
    // The sandbox answers 401 to anything but Basic auth with its API key.
    assert_eq!(create.status, 200, "basic auth with the API key");
    let record = env.view("hal", link["consent_id"].as_str().unwrap()).await;
    assert_eq!(record.provider.as_deref(), Some("sandbox-lloyds"));
    assert_eq!(
        env.at_finexer(&record.consent_id).await.provider.as_deref(),
        Some("sandbox-lloyds")
    );
}

#[tokio::test]
async fn bad_input_gets_clear_client_errors() {
    let env = TestEnv::start().await;
    let cases = [
        (
            json!({"return_to": "https://evil.example/steal"}),
            400,
            "return_to",
        ),
        (json!({"return_to": "//evil.example"}), 400, "return_to"),
        (json!({"provider": "../../x"}), 400, "provider"),
        (json!({"skip_qr": "yes"}), 400, "invalid JSON body"),
        (json!({"redirect": "x"}), 400, "unknown field"),
        (json!([1, 2]), 400, "invalid JSON body"),
        (
            json!([null, null, null, null, null]),
            400,
            "expected a JSON object",
        ),
        (json!("sandbox-monzo"), 400, "expected a JSON object"),
        (json!({"template": "a".repeat(20_000)}), 413, "larger than"),
    ];
    for (body, status, words) in cases {
        let (got, problem) = env.create_link("ivy", body.clone()).await;
        assert_eq!(got, status, "{body} → {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(words),
            "{problem} should mention {words}"
        );
    }
    assert_eq!(
        env.item_count().await,
        0,
        "nothing written for refused input"
    );
    assert!(env.finexer_calls().await.is_empty(), "Finexer not called");
}

#[tokio::test]
async fn callers_without_claims_are_unauthorized() {
    let env = TestEnv::start().await;
    let cases = [
        shared::handlers::create_link(&env.app, request("POST", "/links", "", Some("{}"), None))
            .await,
        shared::handlers::consents(&env.app, request("GET", "/consents", "", None, None)).await,
        shared::handlers::revoke(
            &env.app,
            request("POST", "/consents/bc_1/revoke", "", None, None),
        )
        .await,
    ];
    for response in cases {
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let (status, problem) = json_of(response);
        assert_eq!(status, 401);
        assert_eq!(problem["type"], "/problems/unauthorized");
    }
}

#[tokio::test]
async fn a_user_id_is_never_normalised_into_another() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("alice").await;
    let (status, list) = env.consents("alice", "/consents").await;
    assert_eq!(status, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let long = "a".repeat(257);
    for sub in [
        "alice ",
        "alice\u{a0}",
        " alice",
        "\u{2003}alice",
        "ali\u{0}ce",
        "",
        &long,
    ] {
        for path in ["/consents".to_owned(), format!("/consents/{consent_id}")] {
            let (status, problem) = env.consents(sub, &path).await;
            assert_eq!(status, 401, "{sub:?} {path}: {problem}");
            assert_eq!(problem["type"], "/problems/unauthorized");
        }
        let (status, _) = env.revoke(sub, &consent_id).await;
        assert_eq!(status, 401, "{sub:?} cannot revoke alice's consent");
    }
    assert_eq!(
        env.view("alice", &consent_id).await.status,
        ConsentStatus::Authorized
    );
}

#[tokio::test]
async fn other_users_consents_are_not_found() {
    let env = TestEnv::start().await;
    let (consent_id, state) = env.link("jack").await;
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;
    location(
        &env.callback(&format!("fx_consent={consent_id}&state={state}"))
            .await,
    );

    let (status, _) = env.revoke("mallory", &consent_id).await;
    assert_eq!(status, 404);
    let (unknown_status, unknown) = env.revoke("mallory", "bc_999").await;
    assert_eq!(unknown_status, 404);
    let (status, problem) = env
        .consents("mallory", &format!("/consents/{consent_id}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(problem, unknown, "same answer as for an unknown id");
    let (status, _) = env
        .consents("mallory", &format!("/consents/{consent_id}/accounts"))
        .await;
    assert_eq!(status, 404);
    let (_, list) = env.consents("mallory", "/consents").await;
    assert_eq!(list["data"], json!([]));

    let record = env.view("jack", &consent_id).await;
    assert_eq!(record.status, ConsentStatus::Authorized, "untouched");
    assert!(
        !env.finexer_calls()
            .await
            .iter()
            .any(|c| c.ends_with("/revoke")),
        "no revoke reached Finexer"
    );
}

#[tokio::test]
async fn account_reads_can_be_switched_off() {
    let env = TestEnv::with(Options {
        account_data_enabled: false,
        ..Options::default()
    })
    .await;
    let (consent_id, state) = env.link("kim").await;
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;
    location(
        &env.callback(&format!("fx_consent={consent_id}&state={state}"))
            .await,
    );
    for path in [
        format!("/consents/{consent_id}/accounts"),
        "/accounts".into(),
    ] {
        let (status, problem) = env.consents("kim", &path).await;
        assert_eq!(status, 403);
        assert!(problem["detail"].as_str().unwrap().contains("FCA"));
    }
    let (status, _) = env
        .consents("kim", &format!("/consents/{consent_id}"))
        .await;
    assert_eq!(status, 200, "the consent itself is still readable");
}

pub async fn state_id_of(env: &TestEnv, consent_id: &str) -> String {
    env.item(&format!("CONSENT#{consent_id}"), "CONSENT")
        .await
        .unwrap()["state_id"]
        .as_s()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_first_link_needs_an_email_claim() {
    let env = TestEnv::start().await;
    let mut event = event("POST", "/links", "", Some("{}"), Some("noemail"));
    event["requestContext"]["authorizer"]["jwt"]["claims"]
        .as_object_mut()
        .unwrap()
        .remove("email");
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let (status, problem) = json_of(shared::handlers::create_link(&env.app, request).await);
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().unwrap().contains("email"));
    assert!(env.finexer_calls().await.is_empty());
    assert_eq!(env.item_count().await, 0);
}

#[tokio::test]
async fn hostile_bodies_get_a_clear_400() {
    use base64::Engine;
    let env = TestEnv::start().await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!(
        r#"{{"provider": {}1{}}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let mut bodies: Vec<(Value, &str)> = vec![
        (
            event("POST", "/links", "", Some(&deep_object), Some("ivy")),
            "invalid JSON body",
        ),
        (
            event(
                "POST",
                "/links",
                "",
                Some("{\"provider\": \"a\""),
                Some("ivy"),
            ),
            "invalid JSON body",
        ),
    ];
    bodies.push((
        event(
            "POST",
            "/links",
            "",
            Some(r#"{"provider": "a", "provider": "b"}"#),
            Some("ivy"),
        ),
        "duplicate field",
    ));
    let mut binary = event("POST", "/links", "", None, Some("ivy"));
    binary["body"] = base64::engine::general_purpose::STANDARD
        .encode(b"{\"provider\": \"\xff\xfe\"}")
        .into();
    binary["isBase64Encoded"] = true.into();
    bodies.push((binary, "UTF-8"));
    let mut form = event("POST", "/links", "", Some("provider=x"), Some("ivy"));
    form["headers"]["content-type"] = "application/x-www-form-urlencoded".into();
    bodies.push((form, "must be JSON"));
    for (event, words) in bodies {
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let (status, problem) = json_of(shared::handlers::create_link(&env.app, request).await);
        assert_eq!(status, 400, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(words),
            "{problem}"
        );
    }
    // Too large before it is parsed at all.
    let request = request("POST", "/links", "", Some(&deep), Some("ivy"));
    let (status, _) = json_of(shared::handlers::create_link(&env.app, request).await);
    assert_eq!(status, 413);
    assert_eq!(env.item_count().await, 0);
}

#[tokio::test]
async fn a_warm_container_remembers_known_customers() {
    let env = TestEnv::start().await;
    let store = std::sync::Arc::new(SpyStore::default());
    let app = shared::App::new(
        env.app.config.clone(),
        store.clone(),
        env.app.secrets.clone(),
    )
    .unwrap();
    for _ in 0..3 {
        let response = shared::handlers::create_link(
            &app,
            request("POST", "/links", "", Some("{}"), Some("lena")),
        )
        .await;
        assert_eq!(response.status(), 201);
    }
    let reads = store
        .customer_reads
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        reads, 1,
        "only the first link reads the customer from the store"
    );
    let creates = env
        .finexer_calls()
        .await
        .iter()
        .filter(|c| *c == "POST /customers")
        .count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn consents_are_listed_in_pages() {
    let env = TestEnv::start().await;
    let mut created = Vec::new();
    for _ in 0..3 {
        created.push(env.link("paula").await.0);
    }
    created.reverse(); // newest first
    let list = |query: String| {
        let env = &env;
        async move {
            let response = shared::handlers::consents(
                &env.app,
                request("GET", "/consents", &query, None, Some("paula")),
            )
            .await;
            Reply::<ConsentPage>::of(&response)
        }
    };
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let page = list(query.clone()).await.ok();
        assert!(page.data.len() <= 2);
        seen.extend(page.data.into_iter().map(|c| c.consent_id));
        match page.next_cursor {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, created, "every consent once, newest first");

    use base64::Engine;
    let foreign = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("no separator");
    for bad in [
        "limit=0".to_owned(),
        "limit=101".into(),
        "limit=two".into(),
        "cursor=%21%21".into(),
        format!("cursor={foreign}"),
    ] {
        let problem = list(bad.clone()).await.problem();
        assert_eq!(problem.status, 400, "{bad}");
    }
}
