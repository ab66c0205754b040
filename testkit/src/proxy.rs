//! A TCP forwarder in front of moto or the sandbox that a test can cut off
//! (connection refused), stall or restore, with all data behind it intact
//! (feature `proxy`): the local stack's outage tests, and the function
//! binaries' start-up tests under the Runtime API emulator.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

/// A TCP forwarder that can refuse connections and cut open ones.
pub struct Proxy {
    pub url: String,
    /// Where connections go; settable once the target is known.
    target: Arc<std::sync::RwLock<String>>,
    open: Arc<AtomicBool>,
    /// Accepts connections and never answers on them.
    stalled: Arc<AtomicBool>,
    connections: Arc<Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let open = Arc::new(AtomicBool::new(true));
        let stalled = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let target = Arc::new(std::sync::RwLock::new(target));
        let accept = tokio::spawn({
            let target = target.clone();
            let open = open.clone();
            let stalled = stalled.clone();
            let connections = connections.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        drop(inbound); // refused: closed at once
                        continue;
                    }
                    if stalled.load(Ordering::SeqCst) {
                        // Held open, read from, never answered.
                        connections.lock().await.spawn(async move {
                            let mut sink = tokio::io::sink();
                            let _ = tokio::io::copy(&mut inbound, &mut sink).await;
                        });
                        continue;
                    }
                    let target = target.read().map(|t| t.clone()).unwrap_or_default();
                    connections.lock().await.spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(&target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            }
        });
        Proxy {
            url,
            target,
            open,
            stalled,
            connections,
            accept,
        }
    }

    /// Sends new connections to `target` (`host:port`).
    pub fn retarget(&self, target: String) {
        if let Ok(mut current) = self.target.write() {
            *current = target;
        }
    }

    /// Accepts new connections and never answers; cuts the open ones, so
    /// pooled clients must come through a stalled one.
    pub async fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    /// Refuses new connections and cuts the open ones.
    pub async fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.connections.lock().await.abort_all();
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.stalled.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
