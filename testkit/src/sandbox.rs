//! The Finexer sandbox (our emulator, the one fake Finexer) on a thread and
//! Tokio runtime of its own, so that its work never counts as the caller's:
//! a benchmark that measures its own thread's CPU time sees only its side
//! of each Finexer call.
//!
//! It is reached either over loopback HTTP (`base_url`) or in-process
//! through `FinexerClient`'s transport hook (`transport`): each request,
//! built as for the network, is handed to the sandbox's router on its
//! thread, and the whole answer handed back, with no network stack between.

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
}
