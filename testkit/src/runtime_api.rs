//! A Lambda Runtime API emulator on 127.0.0.1 and one function process
//! attached to it: the process is started with `AWS_LAMBDA_RUNTIME_API`
//! naming the emulator, its init ends at its first `GET .../invocation/next`,
//! and each invocation lasts from the moment the event is handed out to the
//! moment its response (or error) is posted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

const API: &str = "/2018-06-01/runtime";

#[derive(Debug, Clone)]
enum Phase {
    Starting,
    Ready(Instant),
    InitError(String),
}

struct Pending {
    id: String,
    event: Vec<u8>,
    done: oneshot::Sender<Outcome>,
}

struct InFlight {
    sent: Instant,
    done: oneshot::Sender<Outcome>,
}

/// How one invocation ended.
#[derive(Debug)]
pub struct Outcome {
    pub duration: Duration,
    /// Posted to `/error` rather than `/response`.
    pub error: bool,
    pub body: Vec<u8>,
}

impl Outcome {
    /// The HTTP status and parsed body of an API Gateway v2 response.
    pub fn http(&self) -> Option<(u16, Value)> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        let status = v.get("statusCode")?.as_u64()? as u16;
        Some((status, v))
    }
}

struct Shared {
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    phase: watch::Sender<Phase>,
}

/// What to start: a binary and its environment (beside the Lambda variables).
#[derive(Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
}

/// A started function process and its private emulator.
pub struct Session {
    pub name: String,
    child: tokio::process::Child,
    pid: u32,
    spawned: Instant,
    queue: mpsc::UnboundedSender<Pending>,
    phase: watch::Receiver<Phase>,
    server: tokio::task::JoinHandle<()>,
    stop_server: Option<oneshot::Sender<()>>,
    next_id: u64,
}

impl Session {
    /// Binds an emulator on a free loopback port, then starts the process
    /// (the init clock starts just before the spawn).
    pub async fn start(spec: &FunctionSpec, log: &Path) -> Result<Session, String> {
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let (phase_tx, phase_rx) = watch::channel(Phase::Starting);
        let shared = Arc::new(Shared {
            function_arn: format!(
                "arn:aws:lambda:eu-west-2:123456789012:function:{}",
                spec.name
            ),
            queue: tokio::sync::Mutex::new(queue_rx),
            in_flight: Mutex::new(HashMap::new()),
            phase: phase_tx,
        });
        let router = Router::new()
            .route(&format!("{API}/invocation/next"), get(next))
            .route(&format!("{API}/invocation/{{id}}/response"), post(response))
            .route(&format!("{API}/invocation/{{id}}/error"), post(error))
            .route(&format!("{API}/init/error"), post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| format!("runtime API emulator: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });

        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut command = tokio::process::Command::new(&spec.binary);
        command
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[$LATEST]bench")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let spawned = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.binary.display()))?;
        let pid = child.id().ok_or("the process ended at once")?;
        Ok(Session {
            name: spec.name.clone(),
            child,
            pid,
            spawned,
            queue: queue_tx,
            phase: phase_rx,
            server,
            stop_server: Some(stop_tx),
            next_id: 0,
        })
    }

    /// Time from process start to its first `GET /invocation/next`.
    pub async fn ready(&mut self, timeout: Duration) -> Result<Duration, String> {
        let spawned = self.spawned;
        let wait = async {
            loop {
                match self.phase.borrow_and_update().clone() {
                    Phase::Ready(at) => return Ok(at - spawned),
                    Phase::InitError(e) => return Err(format!("init error: {e}")),
                    Phase::Starting => {}
                }
                if self.phase.changed().await.is_err() {
                    return Err("emulator stopped".to_owned());
                }
            }
        };
        tokio::select! {
            r = wait => r,
            status = self.child.wait() => Err(format!("{} exited during init: {status:?}", self.name)),
            _ = tokio::time::sleep(timeout) => Err(format!("{} not ready within {timeout:?}", self.name)),
        }
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&mut self, event: &Value, timeout: Duration) -> Result<Outcome, String> {
        let event = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        self.invoke_raw(event, timeout).await
    }

    /// Hands `event` to the function as it is, valid JSON or not, and waits
    /// for its answer.
    pub async fn invoke_raw(
        &mut self,
        event: Vec<u8>,
        timeout: Duration,
    ) -> Result<Outcome, String> {
        self.next_id += 1;
        let id = format!("{:08x}-bench-{:012}", self.pid, self.next_id);
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Pending {
                id,
                event,
                done: tx,
            })
            .map_err(|_| "emulator stopped".to_owned())?;
        tokio::select! {
            r = rx => r.map_err(|_| "invocation dropped".to_owned()),
            status = self.child.wait() => Err(format!("{} exited during an invocation: {status:?}", self.name)),
            _ = tokio::time::sleep(timeout) => Err(format!("{}: no answer within {timeout:?}", self.name)),
        }
    }

    /// When the process was spawned (the init clock's start).
    pub fn spawned_at(&self) -> Instant {
        self.spawned
    }

    /// The process's id: the same process for the whole session (the
    /// emulator never restarts it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `Ok` while the process runs; its exit status once it has ended.
    pub fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} has exited: {status}", self.name)),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// What the process posted to `/init/error`, if it did.
    pub fn init_error(&self) -> Option<String> {
        match &*self.phase.borrow() {
            Phase::InitError(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// CPU time the process has used so far, every thread's user and
    /// system time (`/proc/<pid>/task/*/schedstat`, in nanoseconds, rather
    /// than `/proc/<pid>/stat`'s 10 ms ticks).
    pub fn cpu_time(&self) -> Result<Duration, String> {
        let tasks = format!("/proc/{}/task", self.pid);
        let mut total = 0u64;
        for task in std::fs::read_dir(&tasks).map_err(|e| format!("{tasks}: {e}"))? {
            let path = task.map_err(|e| e.to_string())?.path().join("schedstat");
            // A thread may end between the listing and the read.
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            total += text
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .ok_or_else(|| format!("{}: unreadable", path.display()))?;
        }
        Ok(Duration::from_nanos(total))
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|e| format!("/proc/{}/status: {e}", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| "no VmHWM".to_owned())
    }

    /// Kills the process (SIGKILL, as Lambda does to an idle sandbox) and the emulator.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        self.server.abort();
        let _ = (&mut self.server).await;
    }
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    let now = Instant::now();
    s.phase.send_if_modified(|phase| {
        if matches!(phase, Phase::Starting) {
            *phase = Phase::Ready(now);
            true
        } else {
            false
        }
    });
    let pending = s.queue.lock().await.recv().await;
    let Some(pending) = pending else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 28_000;
    let trace = format!(
        "Root=1-6745a2b0-{:024x};Parent={:016x};Sampled=0",
        pending.id.len() as u64 * 7919,
        deadline
    );
    let response = Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Lambda-Runtime-Aws-Request-Id", &pending.id)
        .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
        .header("Lambda-Runtime-Invoked-Function-Arn", &s.function_arn)
        .header("Lambda-Runtime-Trace-Id", trace)
        .body(axum::body::Body::from(pending.event))
        .expect("static response parts");
    s.in_flight.lock().expect("in-flight map").insert(
        pending.id,
        InFlight {
            sent: Instant::now(),
            done: pending.done,
        },
    );
    response
}

fn finish(s: &Shared, id: &str, error: bool, body: Bytes) -> Response {
    let received = Instant::now();
    let Some(flight) = s.in_flight.lock().expect("in-flight map").remove(id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let _ = flight.done.send(Outcome {
        duration: received - flight.sent,
        error,
        body: body.to_vec(),
    });
    (StatusCode::ACCEPTED, "{\"status\":\"OK\"}").into_response()
}

async fn response(
    State(s): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    finish(&s, &id, false, body)
}

async fn error(
    State(s): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    finish(&s, &id, true, body)
}

async fn init_error(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).chars().take(500).collect();
    s.phase.send_replace(Phase::InitError(text));
    (StatusCode::ACCEPTED, "{\"status\":\"OK\"}").into_response()
}
