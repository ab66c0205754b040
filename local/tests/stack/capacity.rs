//! The reconciler at scale on the real local stack: confirmed consents due
//! for their daily look at once, taken by runs in parallel. `make test` runs
//! 2,000 (moto applies one request at a time: 10,000 take over ten minutes
//! here); `CAPACITY_RECORDS=10000` runs more.

use std::collections::HashMap;

use connect_testkit::records::{self, Seed};
use serde_json::json;
use shared::Timestamp;
use shared::store::dynamo::DynamoStore;

use crate::support::*;

fn records() -> usize {
    std::env::var("CAPACITY_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

#[tokio::test]
async fn parallel_runs_over_thousands_of_due_records_read_each_once() {
    let _flood = flood().await;
    let count = records();
    // Pages of 1,000: moto answers each `due` query by reading the whole
    // index, so fewer pages keep the test short.
    let stack = Stack::with(&[("RECONCILE_PAGE_SIZE", "1000")]).await;
    let aws = shared::net::aws_config_loader(std::time::Duration::from_secs(10))
        .unwrap()
        .load()
        .await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &stack.table);
    let created = Timestamp::now() - time::Duration::days(2);
    let due = Timestamp::now() - time::Duration::minutes(1);
    let seeded: Vec<_> = (0..count)
        .map(|i| {
            let id = format!("bc_cap{i:05}");
            let state = format!("jti-cap{i:05}");
            let mut record = records::consent(Seed {
                consent_id: &id,
                owner: "capacity",
                customer_id: "cus_capacity",
                state_id: &state,
                return_to: "https://app.example.com/",
                status: ConsentStatus::Authorized,
                at: created,
            });
            record.milestones.confirmed_at = Some(created);
            record.due_at = Some(due);
            record
        })
        .collect();
    // Eight writers of 25-item batches at once.
    let chunks: Vec<_> = seeded.chunks(count.div_ceil(8)).collect();
    let writes = chunks.iter().map(|chunk| store.seed_consents(chunk));
    for written in futures::future::join_all(writes).await {
        written.unwrap();
    }
    stack.sandbox.admin().clear_requests().await.unwrap();

    // Three runs at once, then more until nothing is left.
    let at = in_seconds(0);
    let run = json!({ "at": at });
    let (a, b, c) = tokio::join!(
        stack.reconcile(run.clone()),
        stack.reconcile(run.clone()),
        stack.reconcile(run.clone())
    );
    let mut processed = a.processed + b.processed + c.processed;
    loop {
        let report = stack.reconcile(run.clone()).await;
        if report.processed == 0 {
            break;
        }
        processed += report.processed;
    }
    assert_eq!(processed, count, "{a:?} {b:?} {c:?}");

    let mut reads: HashMap<String, usize> = HashMap::new();
    for call in stack.finexer_calls().await {
        let id = call.strip_prefix("GET /consents/").expect("only reads");
        *reads.entry(id.to_owned()).or_default() += 1;
    }
    assert_eq!(reads.len(), count, "every record was read");
    let twice: Vec<_> = reads.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "read more than once: {twice:?}");
}
