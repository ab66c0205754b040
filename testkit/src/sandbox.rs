//! The Finexer sandbox (our emulator, the one fake Finexer) on a thread and
//! Tokio runtime of its own, so that its work never counts as the caller's:
//! a benchmark that measures its own thread's CPU time sees only its side
//! of each Finexer call.
//!
//! It is reached either over loopback HTTP (`base_url`) or in-process
//! through `FinexerClient`'s transport hook (`transport`): each request,
//! built as for the network, is handed to the sandbox's router on its
//! thread, and the whole answer handed back, with no network stack between.
//!
//! [`decide_at_consent_page`] clicks Approve or Deny on any sandbox's
//! consent page, as the user's browser does.

use std::sync::Arc;

use axum::body::{Body, Bytes, to_bytes};
use finexer_sandbox::{SandboxConfig, SandboxState};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

/// One request for the sandbox thread and where its answer goes.
type Job = (http::Request<Body>, oneshot::Sender<http::Response<Bytes>>);

/// A running sandbox on its own thread; stopped when dropped.
pub struct SandboxThread {
    base_url: String,
    state: SandboxState,
    jobs: mpsc::UnboundedSender<Job>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SandboxThread {
    /// Starts the sandbox with `config` and waits until it listens.
    pub fn start(config: SandboxConfig) -> SandboxThread {
        let (ready, started) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("finexer-sandbox".into())
            .spawn(move || serve(config, ready))
            .expect("spawn the sandbox thread");
        let (base_url, state, jobs, stop) = started.recv().expect("the sandbox starts");
        SandboxThread {
            base_url,
            state,
            jobs,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The sandbox's records, fault rules and request log.
    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    /// A transport that answers through the sandbox's router on its thread.
    pub fn transport(&self) -> Arc<dyn shared::finexer::Transport> {
        Arc::new(InProcess {
            jobs: self.jobs.clone(),
        })
    }
}

type Started = (
    String,
    SandboxState,
    mpsc::UnboundedSender<Job>,
    oneshot::Sender<()>,
);

fn serve(config: SandboxConfig, ready: std::sync::mpsc::Sender<Started>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the sandbox's runtime");
    rt.block_on(async move {
        let sandbox = finexer_sandbox::start(config)
            .await
            .expect("the sandbox binds 127.0.0.1");
        let router = finexer_sandbox::router(sandbox.state().clone());
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let (stop, mut stopped) = oneshot::channel();
        let started = (sandbox.base_url(), sandbox.state().clone(), jobs, stop);
        if ready.send(started).is_err() {
            return;
        }
        loop {
            tokio::select! {
                job = queue.recv() => {
                    let Some((request, reply)) = job else { break };
                    let router = router.clone();
                    tokio::spawn(async move {
                        let response = router.oneshot(request).await.expect("infallible");
                        let (parts, body) = response.into_parts();
                        let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
                        let _ = reply.send(http::Response::from_parts(parts, body));
                    });
                }
                _ = &mut stopped => break,
            }
        }
        sandbox.shutdown().await;
    });
}

impl Drop for SandboxThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the user clicks on the sandbox's consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }
}

/// Clicks `decision` on the consent page of the sandbox at `sandbox_url`
/// for `consent_id`, as the user's browser does, and returns where the page
/// sends the browser: the consent's return URL (our callback, with its
/// `state`). The consent must name its bank (a link made with a `provider`):
/// otherwise approving asks for one, and this panics, as it does on any
/// answer other than that redirect.
pub async fn decide_at_consent_page(
    sandbox_url: &str,
    consent_id: &str,
    decision: Decision,
) -> url::Url {
    // Not following the redirect: the caller decides what reaches the callback.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let response = browser
        .post(format!("{sandbox_url}/connect/{consent_id}/decision"))
        .form(&[("decision", decision.as_str()), ("skip_info", "true")])
        .send()
        .await
        .expect("the consent page answers");
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| url::Url::parse(value).ok());
    match location {
        Some(location)
            if status == reqwest::StatusCode::SEE_OTHER
                && !location.as_str().starts_with(sandbox_url) =>
        {
            location
        }
        other => panic!(
            "the consent page answered {status} (to {other:?}), not a redirect back: {}",
            response.text().await.unwrap_or_default()
        ),
    }
}

struct InProcess {
    jobs: mpsc::UnboundedSender<Job>,
}

#[async_trait::async_trait]
impl shared::finexer::Transport for InProcess {
    async fn send(&self, request: reqwest::Request) -> reqwest::Result<reqwest::Response> {
        let mut forwarded = http::Request::builder()
            .method(request.method().clone())
            .uri(request.url().as_str());
        if let Some(headers) = forwarded.headers_mut() {
            *headers = request.headers().clone();
        }
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map(Bytes::copy_from_slice)
            .unwrap_or_default();
        let forwarded = forwarded
            .body(Body::from(body))
            .expect("a request reqwest built is valid");
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((forwarded, reply))
            .expect("the sandbox thread is running");
        let answer = answer.await.expect("the sandbox thread answers");
        Ok(reqwest::Response::from(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn both_ways_reach_the_same_sandbox() {
        let sandbox = SandboxThread::start(SandboxConfig::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = format!("{}/consents/bc_missing", sandbox.base_url());
        let client = reqwest::Client::new();
        let request = client
            .get(&url)
            .basic_auth(finexer_sandbox::config::DEFAULT_API_KEY, Some(""))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let transport = sandbox.transport();
        let in_process = rt
            .block_on(async { transport.send(request.try_clone().unwrap()).await })
            .unwrap();
        assert_eq!(in_process.status(), 404);
        let text = rt.block_on(in_process.text()).unwrap();
        assert!(text.contains("resource_missing"), "{text}");
        let loopback = rt
            .block_on(async { client.execute(request).await })
            .unwrap();
        assert_eq!(loopback.status(), 404);
        // Both were logged by the one sandbox.
        assert_eq!(sandbox.state().requests.entries().len(), 2);
        // Without the key the sandbox refuses, in-process too.
        let anonymous = client.get(&url).build().unwrap();
        let refused = rt
            .block_on(async { transport.send(anonymous).await })
            .unwrap();
        assert_eq!(refused.status(), 401);
    }

    /// A pending consent returning to a callback that carries a `state`.
    async fn pending_consent(client: &reqwest::Client, base_url: &str) -> String {
        let key = finexer_sandbox::config::DEFAULT_API_KEY;
        let customer: serde_json::Value = client
            .post(format!("{base_url}/customers"))
            .basic_auth(key, Some(""))
            .form(&[("name", "Ada Lovelace"), ("email", "ada@example.com")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let consent: serde_json::Value = client
            .post(format!("{base_url}/consents"))
            .basic_auth(key, Some(""))
            .form(&[
                ("customer", customer["id"].as_str().unwrap()),
                ("return_url", "https://app.example/callback?state=st1"),
                ("provider", "sandbox-monzo"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        consent["id"].as_str().unwrap().to_owned()
    }

    fn query(url: &url::Url) -> Vec<(String, String)> {
        url.query_pairs().into_owned().collect()
    }

    #[tokio::test]
    async fn a_decision_at_the_consent_page_returns_where_the_browser_goes() {
        let sandbox = SandboxThread::start(SandboxConfig::default());
        let client = reqwest::Client::new();

        let approved = pending_consent(&client, sandbox.base_url()).await;
        let back = decide_at_consent_page(sandbox.base_url(), &approved, Decision::Approve).await;
        assert_eq!(back.path(), "/callback");
        let pairs = query(&back);
        assert!(pairs.contains(&("state".into(), "st1".into())), "{back}");
        assert!(
            pairs.contains(&("fx_consent".into(), approved.clone())),
            "{back}"
        );
        assert!(!pairs.iter().any(|(name, _)| name == "error"), "{back}");

        let denied = pending_consent(&client, sandbox.base_url()).await;
        let back = decide_at_consent_page(sandbox.base_url(), &denied, Decision::Deny).await;
        let pairs = query(&back);
        assert!(pairs.contains(&("state".into(), "st1".into())), "{back}");
        assert!(
            pairs.contains(&("error".into(), "access_denied".into())),
            "{back}"
        );

        let consents = sandbox.state().store.consents_where(|_| true);
        let status_of = |id: &str| consents.iter().find(|c| c.id == id).unwrap().status;
        assert_eq!(
            status_of(&approved),
            finexer_sandbox::model::ConsentStatus::Authorized
        );
        assert_eq!(
            status_of(&denied),
            finexer_sandbox::model::ConsentStatus::Canceled
        );
    }

    #[tokio::test]
    #[should_panic(expected = "not a redirect back")]
    async fn a_decision_the_page_refuses_panics_with_its_answer() {
        let sandbox = SandboxThread::start(SandboxConfig::default());
        decide_at_consent_page(sandbox.base_url(), "bc_missing", Decision::Approve).await;
    }
}
