//! The reconciler over the real `due` index (moto): what it finds, what it
//! does, and that two runs at once never handle a record twice.

use finexer_sandbox::FaultRule;
use shared::consent::ConsentStatus;
use shared::store::ChangeSource;
use time::OffsetDateTime;

use crate::support::*;

fn after(duration: std::time::Duration) -> OffsetDateTime {
    OffsetDateTime::now_utc() + duration + time::Duration::seconds(1)
}

#[tokio::test]
async fn a_closed_tab_is_recorded_unconfirmed_then_revoked_after_the_window() {
    let env = TestEnv::start().await;
    let (consent_id, _state) = env.link("alice").await;
    // Approved at the bank; the browser never came back.
    env.finexer_says(&consent_id, AtFinexer::Authorized).await;

    let report = env.reconcile_at(None).await;
    assert_eq!(report.processed, 0, "not due while the callback may come");
    assert_eq!(env.record(&consent_id).await.status, ConsentStatus::Pending);

    let state_lapsed = after(env.app.config.state_ttl);
    let report = env.reconcile_at(Some(state_lapsed)).await;
    assert_eq!((report.processed, report.changed), (1, 1), "{report:?}");
    let record = env.record(&consent_id).await;
    assert_eq!(record.status, ConsentStatus::Authorized);
    assert_eq!(record.milestones.confirmed_at, None);
    assert_eq!(
        record.history.last().unwrap().source,
        ChangeSource::Reconcile
    );
    assert_eq!(
        record.due_at, record.milestones.confirm_by,
        "looked at again then"
    );
    let (status, _) = env
        .consents("alice", &format!("/consents/{consent_id}/accounts"))
        .await;
    assert_eq!(status, 409, "never served unconfirmed");

    let window_closed = state_lapsed + env.app.config.confirm_ttl + time::Duration::seconds(1);
    let report = env.reconcile_at(Some(window_closed)).await;
    assert_eq!(report.changed, 1, "{report:?}");
    let record = env.record(&consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(
        record.milestones.revoke_reason.as_deref(),
        Some("unconfirmed")
    );
    assert_eq!(record.due_at, None);
    assert!(
        env.finexer_calls()
            .await
            .contains(&format!("POST /consents/{consent_id}/revoke"))
    );
}

#[tokio::test]
async fn a_revoke_finexer_refused_is_finished_by_a_later_run() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("alice").await;
    env.finexer_faults(&[FaultRule {
        retry_after: Some(0),
        ..failing("POST", &format!("/consents/{consent_id}/revoke"), 503)
    }])
    .await;
    let (status, _) = env.revoke("alice", &consent_id).await;
    assert_eq!(status, 503);
    assert_eq!(
        env.record(&consent_id).await.status,
        ConsentStatus::RevokePending
    );

    // Still down: the record waits longer each time.
    let first = after(shared::handlers::reconcile::LEASE.unsigned_abs());
    let report = env.reconcile_at(Some(first)).await;
    assert_eq!((report.processed, report.failed), (1, 1), "{report:?}");
    let waiting = env.record(&consent_id).await;
    assert_eq!(waiting.status, ConsentStatus::RevokePending);
    let next = waiting.due_at.unwrap();
    assert!(next > Timestamp::from(first), "{next}");
    assert_eq!(
        env.reconcile_at(Some(first)).await.processed,
        0,
        "not due yet"
    );

    env.reset_faults().await;
    let later = (next + time::Duration::seconds(1)).datetime();
    let report = env.reconcile_at(Some(later)).await;
    assert_eq!(report.changed, 1, "{report:?}");
    let record = env.record(&consent_id).await;
    assert_eq!(record.status, ConsentStatus::Canceled);
    assert_eq!(
        record.history.last().unwrap().source,
        ChangeSource::Reconcile
    );
    assert_eq!(record.due_at, None);
}

#[tokio::test]
async fn two_runs_at_once_handle_each_record_once() {
    let env = TestEnv::start().await;
    let mut ids = Vec::new();
    // Thirty users: one user's pending links are capped at 5.
    for i in 0..30 {
        let (consent_id, _) = env.link(&format!("runner-{i}")).await;
        env.finexer_says(&consent_id, AtFinexer::Expired).await;
        ids.push(consent_id);
    }
    let at = after(env.app.config.state_ttl);
    let (a, b) = tokio::join!(env.reconcile_at(Some(at)), env.reconcile_at(Some(at)));
    assert_eq!(a.processed + b.processed, 30, "{a:?} {b:?}");
    assert_eq!(a.changed + b.changed, 30);
    let calls = env.finexer_calls().await;
    for consent_id in &ids {
        let reads = calls
            .iter()
            .filter(|call| *call == &format!("GET /consents/{consent_id}"))
            .count();
        assert_eq!(reads, 1, "{consent_id} asked once");
        let record = env.record(consent_id).await;
        assert_eq!(record.status, ConsentStatus::Expired);
        assert_eq!(record.due_at, None);
    }
    let again = env.reconcile_at(Some(at)).await;
    assert_eq!(again.due, 0, "{again:?}");
}

#[tokio::test]
async fn a_run_out_of_budget_leaves_the_rest_due_and_untouched() {
    let env = TestEnv::start().await;
    for _ in 0..5 {
        let (consent_id, _) = env.link("alice").await;
        env.finexer_says(&consent_id, AtFinexer::Failed).await;
    }
    let run = shared::handlers::reconcile::Run {
        at: Some(Timestamp::from(after(env.app.config.state_ttl)).to_string()),
        budget_ms: Some(0),
    };
    let report = shared::handlers::reconcile(&env.app, run.clone())
        .await
        .unwrap();
    assert!(report.out_of_time, "{report:?}");
    assert_eq!(report.processed, 0);
    let finished = shared::handlers::reconcile(
        &env.app,
        shared::handlers::reconcile::Run {
            budget_ms: None,
            ..run
        },
    )
    .await
    .unwrap();
    assert_eq!(finished.changed, 5, "{finished:?}");
}

#[tokio::test]
async fn reconfirming_records_it_at_finexer_and_here() {
    let env = TestEnv::start().await;
    let consent_id = env.confirmed_link("alice").await;
    let reconfirm = |user: &'static str, id: String| {
        let env = &env;
        async move {
            json_of(
                shared::handlers::confirm(
                    &env.app,
                    request(
                        "POST",
                        &format!("/consents/{id}/reconfirm"),
                        "",
                        None,
                        Some(user),
                    ),
                )
                .await,
            )
        }
    };
    let (status, _) = reconfirm("mallory", consent_id.clone()).await;
    assert_eq!(status, 404, "not someone else's to re-confirm");

    let (status, view) = reconfirm("alice", consent_id.clone()).await;
    assert_eq!(status, 200, "{view}");
    let at_finexer = env.at_finexer(&consent_id).await;
    let renewed_at_finexer = at_finexer.renewed_at.expect("renewed at Finexer");
    let time_of = |field: &str| Timestamp::parse(view[field].as_str().unwrap()).unwrap();
    assert_eq!(
        time_of("expires_at").unix_seconds(),
        at_finexer.expiry_date.unwrap().unix_seconds(),
        "Finexer's new expiry"
    );
    let renewed = time_of("renewed_at");
    assert_eq!(
        renewed.unix_seconds(),
        renewed_at_finexer.unix_seconds(),
        "the renewal time we sent"
    );
    assert_eq!(time_of("reconfirm_by") - renewed, time::Duration::days(90));
    assert_eq!(
        view["history"].as_array().unwrap().last().unwrap()["source"],
        "reconfirm"
    );
    assert!(
        env.finexer_calls()
            .await
            .contains(&format!("POST /consents/{consent_id}"))
    );

    // Unconfirmed or revoked consents cannot be re-confirmed.
    let (pending, _) = env.link("alice").await;
    assert_eq!(reconfirm("alice", pending).await.0, 409);
    env.revoke("alice", &consent_id).await;
    assert_eq!(reconfirm("alice", consent_id).await.0, 409);
}
