//! The `finexer-sandbox` binary: clear failure on a taken port, clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_finexer-sandbox");

#[test]
fn a_taken_port_gives_a_clear_message_not_a_panic() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let output = Command::new(BINARY)
        .env("SANDBOX_ADDR", addr.to_string())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains(&addr.to_string()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn it_prints_its_url_and_exits_cleanly_on_sigterm() {
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let mut child = Command::new(BINARY)
        .env("SANDBOX_ADDR", addr.to_string())
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    assert!(
        first_line.contains(&format!("http://{addr}")),
        "{first_line}"
    );

    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.contains("Stopping"), "{rest}");
}

/// The binary is built without a TLS provider in reqwest, exactly as `cargo
/// run` builds it; the webhook client must still start and deliver.
#[tokio::test]
async fn the_binary_delivers_signed_webhooks() {
    let (webhook_url, mut receiver) = crate::webhooks::start_receiver().await;
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let child = Command::new(BINARY)
        .env("SANDBOX_ADDR", addr.to_string())
        .env("SANDBOX_WEBHOOK_URL", &webhook_url)
        .env("SANDBOX_WEBHOOK_SECRET", crate::webhooks::SECRET)
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut first_line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    if !first_line.contains("listening") {
        panic!("the sandbox did not start: {}", child.stderr());
    }

    let client = crate::helpers::test_client();
    let base = format!("http://{addr}");
    let consent: serde_json::Value = client
        .post(format!("{base}/consents"))
        .basic_auth(crate::helpers::API_KEY, Some(""))
        .form(&[("metadata[test]", "binary")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = consent["id"].as_str().unwrap();
    let forced = finexer_sandbox::client::Admin::new(&base)
        .set_status(id, finexer_sandbox::model::ConsentStatus::Failed)
        .await
        .unwrap();
    assert_eq!(forced.id, id);

    let event = crate::webhooks::next_event(&mut receiver).await;
    assert_eq!(event["type"], "consent.failed");
    assert_eq!(event["data"]["object"]["id"], id);
}

struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    /// What the child wrote to stderr, once it has ended, to explain a failed start.
    fn stderr(&mut self) -> String {
        let _ = self.0.kill();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        stderr
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
