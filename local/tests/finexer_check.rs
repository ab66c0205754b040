//! The contract check (`finexer-check`) against our sandbox: clean when the
//! sandbox is as docs/finexer-api.md says, naming each difference by its field
//! path when it is not, cleaning up after a failed step, and its recordings
//! replayed through the client's parsers and the tables.

use std::path::{Path, PathBuf};
use std::process::Command;

use connect_local::finexer_check::replay;
use finexer_sandbox::config::DEFAULT_API_KEY;
use finexer_sandbox::model::ConsentStatus;
use finexer_sandbox::mutations::Mutations;
use finexer_sandbox::{FaultRule, RunningSandbox, SandboxConfig};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The line of step `n` (`"3/7 ..."`).
    fn step(&self, n: u8) -> &str {
        let prefix = format!("{n}/7 ");
        self.stdout
            .lines()
            .find(|line| line.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no line for step {n} in:\n{}", self.stdout))
    }
}

/// Runs the binary with a clean environment: only what is given here.
async fn check(env: &[(&str, String)], args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_finexer-check"));
    command.env_clear().args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn against(sandbox: &RunningSandbox) -> Vec<(&'static str, String)> {
    vec![
        ("FINEXER_BASE_URL", sandbox.base_url()),
        ("FINEXER_API_KEY", DEFAULT_API_KEY.to_owned()),
    ]
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "finexer-check-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

/// The one consent the run created, as the sandbox holds it now.
fn only_consent(sandbox: &RunningSandbox) -> finexer_sandbox::model::Consent {
    let consents = sandbox.state().store.consents_where(|_| true);
    assert_eq!(consents.len(), 1, "one consent per run");
    consents.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn our_sandbox_checks_clean_and_its_recording_replays_clean_and_redacted() {
    let sandbox = finexer_sandbox::start(SandboxConfig::default())
        .await
        .unwrap();
    let dir = temp_dir("clean");
    let run = check(
        &against(&sandbox),
        &["--strict", "--record", dir.to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.stderr, "");
    for n in 1..=7 {
        assert!(run.step(n).contains("  OK: "), "{}", run.step(n));
    }
    assert!(
        run.stdout
            .contains("Result: no difference from docs/finexer-api.md.")
    );
    assert!(
        !run.stdout.contains(DEFAULT_API_KEY),
        "the key is never printed"
    );

    // Nothing left live; the customer is named.
    let consent = only_consent(&sandbox);
    assert_eq!(consent.status, ConsentStatus::Canceled);
    let customer_id = consent.customer.clone().unwrap();
    assert!(
        run.stdout
            .contains(&format!("Left behind: customer {customer_id}"))
    );

    // What was sent and is personal or secret is in no recorded file.
    let customer = sandbox.state().store.customer(&customer_id).unwrap();
    let return_url = url::Url::parse(consent.redirect.return_url.as_deref().unwrap()).unwrap();
    let state = return_url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let secrets = [
        customer.name.as_str(),
        customer.email.as_str(),
        state.as_str(),
        consent.metadata["state_id"].as_str(),
        DEFAULT_API_KEY,
    ];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} recorded");
        }
    }

    let replayed = replay(&dir, false).await.unwrap();
    assert_eq!(
        (replayed.breaking, replayed.notes),
        (0, 0),
        "{:#?}",
        replayed.lines
    );
    std::fs::remove_dir_all(&dir).unwrap();
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_field_and_a_dropped_status_are_named_with_their_paths() {
    let sandbox = finexer_sandbox::start(SandboxConfig::default())
        .await
        .unwrap();
    let mutations = Mutations {
        rename_fields: [("redirect.consent_url".into(), "redirect.url".into())].into(),
        replace_statuses: [("canceled".into(), "revoked".into())].into(),
    };
    let set = sandbox.admin().set_mutations(&mutations).await.unwrap();
    assert_eq!(set, mutations);

    let dir = temp_dir("mutated");
    let run = check(&against(&sandbox), &["--record", dir.to_str().unwrap()]).await;
    println!("{}", run.stdout);
    assert_eq!(run.code, 1, "differences that break a journey exit 1");
    // The renamed field, by its path and its new name, where the journey reads it.
    let created = run.step(3);
    assert!(created.contains("DIFFERENT: redirect.consent_url: missing (the answer has `redirect.url` instead: renamed?"), "{created}");
    assert!(created.contains("[breaks the journey]"), "{created}");
    // The dropped status, by its path, where a revoke reads it.
    let revoked = run.step(6);
    assert!(
        revoked.contains(
            r#"DIFFERENT: status: "revoked" is not one of Finexer's documented statuses"#
        ),
        "{revoked}"
    );
    assert!(revoked.contains("expected canceled here"), "{revoked}");
    assert!(run.step(7).contains("[as in step 6]"));
    assert!(
        run.stdout
            .contains("Result: 2 differences or failures that would break a journey, 0 notes.")
    );
    // Still cleaned up: the revoke took, whatever it was called.
    assert_eq!(only_consent(&sandbox).status, ConsentStatus::Canceled);

    // The recording shows the same differences when replayed.
    let replayed = replay(&dir, false).await.unwrap();
    assert_eq!(replayed.breaking, 2, "{:#?}", replayed.lines);
    std::fs::remove_dir_all(&dir).unwrap();
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consent_is_revoked_even_when_the_revoke_step_fails() {
    // Every attempt of step 6 fails (3 attempts); the cleanup's revoke is the 4th.
    let sandbox = finexer_sandbox::start(SandboxConfig {
        faults: vec![FaultRule {
            count: Some(3),
            ..FaultRule::failing(Some("POST"), "/consents/", 500)
        }],
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let run = check(&against(&sandbox), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.step(6).contains(" 500  FAILED after 3 attempts: "),
        "{}",
        run.step(6)
    );
    assert!(
        run.step(7)
            .contains("status: is pending, expected canceled"),
        "{}",
        run.step(7)
    );
    let consent = only_consent(&sandbox);
    assert!(
        run.stdout.contains(&format!(
            "cleanup  revoked consent {}: canceled",
            consent.id
        )),
        "{}",
        run.stdout
    );
    assert_eq!(consent.status, ConsentStatus::Canceled);
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_mode_checks_a_delivered_webhooks_signature() {
    let run = check(&[], &["--sandbox", "--webhook-secret", "--strict"]).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let webhook = run
        .stdout
        .lines()
        .find(|line| line.starts_with("webhook "))
        .unwrap();
    assert!(
        webhook.contains("OK: fx-signature verified, consent.canceled evt_"),
        "{webhook}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_the_check_does_not_run() {
    let run = check(&[("FINEXER_BASE_URL", "http://127.0.0.1:9".into())], &[]).await;
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty(), "nothing was called: {}", run.stdout);
    assert!(
        run.stderr.contains("FINEXER_API_KEY is not set"),
        "{}",
        run.stderr
    );
}

/// Every recording under `tests/fixtures/finexer-recordings/` (ours, made
/// against the sandbox, and any a platform sends us) must read clean.
#[tokio::test]
async fn recordings_replay_through_the_parsers_and_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/finexer-recordings");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let report = replay(&dir, false).await.unwrap();
        assert_eq!(
            (report.breaking, report.notes),
            (0, 0),
            "{}:\n{}",
            dir.display(),
            report.lines.join("\n")
        );
        replayed += 1;
    }
    assert!(replayed >= 1);
    // Ours was made with --wait-for-approval, so accounts were checked too.
    let ours = replay(&root.join("sandbox"), false).await.unwrap();
    assert!(
        ours.lines
            .iter()
            .any(|l| l.starts_with("5/7") && l.contains("OK: 3 accounts")),
        "{:#?}",
        ours.lines
    );
}
