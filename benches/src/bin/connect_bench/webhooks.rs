//! Issue 12's speed figures, against the local stack (its sandbox with
//! `SANDBOX_LATENCY_MS`, the periodic reconciler off): how fast the webhook
//! route acknowledges a signed event, first delivery and redelivery, and how
//! many records a reconciler run gets through per second.
//!
//! Every consent is created through the API (`POST /links`), for users of
//! `LINKS_PER_USER` links each, so it is a real pending record in our table
//! and a real consent at the sandbox. (One user holding every link would
//! make each new link rewrite one ever larger pending-places item, which
//! moto slows down on: a cost of the set-up, not of a deployment.)
//!
//! The webhook round delivers one `consent.canceled` event per consent
//! (distinct event ids, signed as Finexer signs them, the signature
//! made just before sending); the handler reads the record, records the event
//! id, GETs the consent from the sandbox (still pending there) and follows
//! it. The reconciler round then runs `/local/reconcile` as at a time past the
//! states' lifetime, so every pending record is due, until none is left.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use finexer_sandbox::forgeries::signed_at;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Settings;
use crate::clients::Http;

/// Signs the local stack's secret lists in `webhook_secrets`
/// (`connect_local::LOCAL_WEBHOOK_SECRET`).
const LOCAL_WEBHOOK_SECRET: &str = "whsec_local_sandbox_only";
/// Past the state's lifetime (`STATE_TTL_SECONDS`, 900): every pending
/// record created before the run is due.
const LAPSED_SECONDS: i64 = 901;
/// Bounds the reconciler round: runs until nothing is due, at most this many.
const MAX_RECONCILE_RUNS: usize = 30;

/// One delivery round: every event once, `concurrency` at a time.
pub struct DeliveryRound {
    pub name: &'static str,
    pub concurrency: usize,
    /// Time to the answer of each delivery (ms), answered or not.
    pub ms: Vec<f64>,
    pub statuses: BTreeMap<u16, usize>,
    /// Deliveries that got no answer (connection error, timeout).
    pub no_answer: usize,
    pub first_error: Option<String>,
    pub wall_s: f64,
}

impl DeliveryRound {
    /// Answers outside 2xx, and deliveries without an answer.
    pub fn failures(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(_, n)| n)
            .sum::<usize>()
            + self.no_answer
    }
}

pub struct ReconcileRound {
    /// Consents created for the round (all pending, all lapsed at `at`).
    pub created: usize,
    pub at: String,
    /// Each run's report and its wall time (s), in order.
    pub runs: Vec<(Value, f64)>,
}

impl ReconcileRound {
    pub fn total(&self, field: &str) -> u64 {
        self.runs
            .iter()
            .map(|(r, _)| r[field].as_u64().unwrap_or(0))
            .sum()
    }

    pub fn wall_s(&self) -> f64 {
        self.runs.iter().map(|(_, s)| s).sum()
    }

    pub fn per_second(&self) -> Option<f64> {
        let wall = self.wall_s();
        (wall > 0.0).then(|| self.total("processed") as f64 / wall)
    }
}

#[derive(Default)]
pub struct WebhookResults {
    /// Consents created through `POST /links` for the rounds, and how long
    /// that took (s).
    pub created: usize,
    pub create_s: f64,
    /// Their ids (still pending at the sandbox afterwards).
    pub consents: Vec<String>,
    pub rounds: Vec<DeliveryRound>,
    pub reconcile: Option<ReconcileRound>,
    /// Why a round did not run or stopped.
    pub notes: Vec<String>,
}

/// Runs `jobs` through `concurrency` workers; each job's result in order.
async fn in_parallel<J, T, F, Fut>(jobs: Vec<J>, concurrency: usize, work: F) -> Vec<T>
where
    J: Send + 'static,
    T: Send + 'static,
    F: Fn(J) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send,
{
    let count = jobs.len();
    let queue: Arc<Mutex<VecDeque<(usize, J)>>> =
        Arc::new(Mutex::new(jobs.into_iter().enumerate().collect()));
    let work = Arc::new(work);
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let queue = queue.clone();
        let work = work.clone();
        workers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                let Some((n, job)) = next else { break };
                done.push((n, work(job).await));
            }
            done
        }));
    }
    let mut all: Vec<Option<T>> = (0..count).map(|_| None).collect();
    for worker in workers {
        if let Ok(done) = worker.await {
            for (n, result) in done {
                all[n] = Some(result);
            }
        }
    }
    all.into_iter().flatten().collect()
}

fn event_body(event_id: &str, consent_id: &str) -> Vec<u8> {
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    json!({
        "id": event_id,
        "object": "event",
        "type": "consent.canceled",
        "created_at": now,
        "data": {"object": {"id": consent_id, "object": "consent", "status": "canceled"}},
    })
    .to_string()
    .into_bytes()
}

/// Delivers each `(event id, consent id)` once, signed just before it is
/// sent, and times each answer.
async fn deliver(
    settings: &Settings,
    http: &Http,
    name: &'static str,
    events: &[(String, String)],
) -> DeliveryRound {
    let concurrency = settings.webhook_concurrency;
    let jobs: Vec<Vec<u8>> = events
        .iter()
        .map(|(event, consent)| event_body(event, consent))
        .collect();
    let http = http.clone();
    let base = settings.local.clone();
    let started = Instant::now();
    let answers = in_parallel(jobs, concurrency, move |body| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let signature = signed_at(LOCAL_WEBHOOK_SECRET, OffsetDateTime::now_utc(), &body);
            let sent = Instant::now();
            let answer = http.local_webhook(&base, &signature, body).await;
            (sent.elapsed().as_secs_f64() * 1000.0, answer)
        }
    })
    .await;
    let mut round = DeliveryRound {
        name,
        concurrency,
        ms: Vec::new(),
        statuses: BTreeMap::new(),
        no_answer: 0,
        first_error: None,
        wall_s: started.elapsed().as_secs_f64(),
    };
    for (ms, answer) in answers {
        round.ms.push(ms);
        match answer {
            Ok(status) => *round.statuses.entry(status).or_insert(0) += 1,
            Err(e) => {
                round.no_answer += 1;
                round.first_error.get_or_insert(e);
            }
        }
    }
    round
}

/// Pending links per user in the set-up (under `MAX_PENDING_LINKS`).
pub const LINKS_PER_USER: usize = 50;

/// Creates `count` consents through the API, `LINKS_PER_USER` per user: each
/// user's first link alone (it creates their Finexer customer), the rest 16
/// at a time.
async fn create_consents(
    settings: &Settings,
    http: &Http,
    count: usize,
) -> Result<Vec<String>, String> {
    let mut consents = Vec::with_capacity(count);
    let mut tokens = Vec::new();
    for user in 0..count.div_ceil(LINKS_PER_USER) {
        let token = http
            .local_token(&settings.local_demo, &format!("webhook-user-{user}"))
            .await?;
        consents.push(http.local_create_link(&settings.local, &token).await?);
        tokens.push(token);
    }
    let http = http.clone();
    let base = settings.local.clone();
    let jobs: Vec<String> = (tokens.len()..count)
        .map(|n| tokens[n % tokens.len()].clone())
        .collect();
    let created = in_parallel(jobs, 16, move |token| {
        let http = http.clone();
        let base = base.clone();
        async move { http.local_create_link(&base, &token).await }
    })
    .await;
    for consent in created {
        consents.push(consent?);
    }
    Ok(consents)
}

pub async fn run(
    settings: &Settings,
    http: &Http,
    skip_webhooks: bool,
    skip_reconcile: bool,
) -> WebhookResults {
    let mut results = WebhookResults::default();
    if let Err(e) = rounds(settings, http, skip_webhooks, skip_reconcile, &mut results).await {
        results.notes.push(e);
    }
    results
}

async fn rounds(
    settings: &Settings,
    http: &Http,
    skip_webhooks: bool,
    skip_reconcile: bool,
    results: &mut WebhookResults,
) -> Result<(), String> {
    let deliveries = if skip_webhooks {
        0
    } else {
        settings.webhook_events
    };
    let records = if skip_reconcile {
        0
    } else {
        settings.reconcile_records
    };
    let count = deliveries.max(records);
    if count == 0 {
        return Ok(());
    }
    eprintln!("webhooks: creating {count} consents through POST /links, {LINKS_PER_USER} per user");
    let started = Instant::now();
    let consents = create_consents(settings, http, count).await?;
    results.create_s = started.elapsed().as_secs_f64();
    results.created = consents.len();
    results.consents = consents.clone();

    if deliveries > 0 {
        // Distinct across runs too, should the table be kept.
        let run = OffsetDateTime::now_utc().unix_timestamp();
        let events: Vec<(String, String)> = consents
            .iter()
            .take(deliveries)
            .enumerate()
            .map(|(n, consent)| (format!("evt_bench_{run}_{n}"), consent.clone()))
            .collect();
        eprintln!(
            "webhooks: {} signed deliveries, {} at a time",
            events.len(),
            settings.webhook_concurrency
        );
        results
            .rounds
            .push(deliver(settings, http, "first delivery", &events).await);
        eprintln!("webhooks: the same {} events again", events.len());
        results
            .rounds
            .push(deliver(settings, http, "redelivery (same event id)", &events).await);
    }

    if records > 0 {
        let at = (OffsetDateTime::now_utc() + time::Duration::seconds(LAPSED_SECONDS))
            .format(&Rfc3339)
            .map_err(|e| e.to_string())?;
        let mut round = ReconcileRound {
            created: consents.len(),
            at: at.clone(),
            runs: Vec::new(),
        };
        for n in 0..MAX_RECONCILE_RUNS {
            eprintln!("reconcile: run {} as at {at}", n + 1);
            let started = Instant::now();
            let report = http.local_reconcile(&settings.local, &at).await;
            let wall = started.elapsed().as_secs_f64();
            match report {
                Ok(report) => {
                    let more = report["out_of_time"].as_bool().unwrap_or(false)
                        && report["processed"].as_u64().unwrap_or(0) > 0;
                    round.runs.push((report, wall));
                    if !more {
                        break;
                    }
                }
                Err(e) => {
                    results.notes.push(format!("reconciler run failed: {e}"));
                    break;
                }
            }
        }
        results.reconcile = Some(round);
    }
    Ok(())
}
