//! The DynamoDB store's own guarantees, against moto: atomic consent + state
//! writes, single consumption under concurrency, expiry, customer leases.

use shared::consent::ConsentStatus;
use shared::store::dynamo::DynamoStore;
use shared::store::memory::MemoryStore;
use shared::store::*;

use connect_testkit::records::{self, Seed, at};

use crate::support::aws_config;

async fn dynamo_store() -> DynamoStore {
    dynamo_table().await.0
}

/// A store on a fresh table, with a client and the table's name for
/// reading and writing its items directly.
async fn dynamo_table() -> (DynamoStore, aws_sdk_dynamodb::Client, String) {
    let aws = aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let table = format!("store-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoStore::new(client.clone(), &table);
    store.create_table().await.unwrap();
    (store, client, table)
}

fn record(id: &str, owner: &str, created_at: &str) -> (ConsentRecord, StateRecord) {
    let state_id = format!("state-{id}");
    let consent = records::consent(Seed {
        consent_id: id,
        owner,
        customer_id: "cus_1",
        state_id: &state_id,
        return_to: "https://app.example.com/",
        status: ConsentStatus::Pending,
        at: at(created_at),
    });
    let state = StateRecord {
        state_id: format!("state-{id}"),
        consent_id: id.into(),
        owner: owner.into(),
        expires_at: 2_000_000_000,
    };
    (consent, state)
}

fn authorize() -> Transition {
    let mut change = Transition::new(
        ConsentStatus::Authorized,
        at("2026-11-25T10:00:00Z"),
        ChangeSource::Callback,
    );
    change.set.authorized_at = Some(change.at);
    change
}

/// The same scenario on both stores, so the in-memory one used by logic tests
/// cannot drift from DynamoDB's behaviour.
async fn single_use_and_binding(store: &dyn ConsentStore) {
    let (a, a_state) = record("bc_a", "u1", "2026-11-25T09:00:00Z");
    let (b, b_state) = record("bc_b", "u1", "2026-11-25T09:30:00Z");
    store.insert_consent(&a, &a_state).await.unwrap();
    store.insert_consent(&b, &b_state).await.unwrap();
    assert!(
        store.insert_consent(&a, &a_state).await.is_err(),
        "no overwrite"
    );

    let pending = [ConsentStatus::Pending];
    let now = 1_900_000_000;
    // Bound to another consent.
    assert_eq!(
        store
            .consume_state("state-bc_a", "bc_b", now, &pending, &authorize())
            .await
            .unwrap(),
        ConsumeOutcome::StateUnusable
    );
    // Expired (the item is still there: TTL deletes lazily).
    assert_eq!(
        store
            .consume_state("state-bc_a", "bc_a", 2_000_000_001, &pending, &authorize())
            .await
            .unwrap(),
        ConsumeOutcome::StateUnusable
    );
    assert_eq!(
        store
            .consume_state("state-bc_a", "bc_a", now, &pending, &authorize())
            .await
            .unwrap(),
        ConsumeOutcome::Applied
    );
    assert_eq!(
        store
            .consume_state("state-bc_a", "bc_a", now, &pending, &authorize())
            .await
            .unwrap(),
        ConsumeOutcome::StateUnusable,
        "used once only"
    );
    let stored = store.consent("bc_a").await.unwrap().unwrap();
    assert_eq!(stored.status, ConsentStatus::Authorized);
    assert_eq!(stored.history.len(), 2);

    // The consent moved on (revoked): the unused state of b cannot be spent.
    let mut cancel = Transition::new(
        ConsentStatus::Canceled,
        at("2026-11-25T11:00:00Z"),
        ChangeSource::Revoke,
    );
    cancel.set.revoked_at = Some(cancel.at);
    assert!(
        store
            .transition("bc_b", owned_by("someone-else"), &pending, &cancel)
            .await
            .unwrap()
            .is_none(),
        "owner condition"
    );
    assert!(
        store
            .transition("bc_b", owned_by("u1"), &pending, &cancel)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .consume_state("state-bc_b", "bc_b", now, &pending, &authorize())
            .await
            .unwrap(),
        ConsumeOutcome::ConsentChanged
    );
    let b_now = store.consent("bc_b").await.unwrap().unwrap();
    assert_eq!(b_now.status, ConsentStatus::Canceled);
    assert_eq!(
        b_now.milestones.revoked_at,
        Some(at("2026-11-25T11:00:00Z"))
    );

    let all = Page {
        limit: 10,
        after: None,
    };
    let listed: Vec<String> = store
        .consents_of("u1", &all)
        .await
        .unwrap()
        .records
        .into_iter()
        .map(|c| c.consent_id)
        .collect();
    assert_eq!(listed, ["bc_b", "bc_a"]);
    assert!(
        store
            .consents_of("u2", &all)
            .await
            .unwrap()
            .records
            .is_empty()
    );
    // Pages of one: the first says where the next starts.
    let first = store
        .consents_of(
            "u1",
            &Page {
                limit: 1,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.records[0].consent_id, "bc_b");
    let second = store
        .consents_of(
            "u1",
            &Page {
                limit: 1,
                after: first.next.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(second.records[0].consent_id, "bc_a");
    // DynamoDB may not know that a full page was the last: then the page
    // after it is empty and ends the list.
    if let Some(after) = second.next {
        let rest = store
            .consents_of(
                "u1",
                &Page {
                    limit: 1,
                    after: Some(after),
                },
            )
            .await
            .unwrap();
        assert!(rest.records.is_empty() && rest.next.is_none());
    }
}

#[tokio::test]
async fn dynamo_store_enforces_single_use_and_binding() {
    single_use_and_binding(&dynamo_store().await).await;
}

#[tokio::test]
async fn memory_store_behaves_like_dynamo() {
    single_use_and_binding(&MemoryStore::new()).await;
}

#[tokio::test]
async fn concurrent_consumption_of_one_state_applies_once() {
    let store = dynamo_store().await;
    let (consent, state) = record("bc_race", "u1", "2026-11-25T09:00:00Z");
    store.insert_consent(&consent, &state).await.unwrap();
    let attempts = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .consume_state(
                    "state-bc_race",
                    "bc_race",
                    1_900_000_000,
                    &[ConsentStatus::Pending],
                    &authorize(),
                )
                .await
        })
    });
    let outcomes: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let applied = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(ConsumeOutcome::Applied)))
        .count();
    assert_eq!(applied, 1, "{outcomes:?}");
    let stored = store.consent("bc_race").await.unwrap().unwrap();
    assert_eq!(stored.history.len(), 2, "one change recorded");
}

async fn customer_leases(store: &dyn ConsentStore) {
    let now = 1_900_000_000;
    assert_eq!(store.customer("u").await.unwrap(), None);
    assert_eq!(
        store.claim_customer("u", now, 30).await.unwrap(),
        CustomerClaim::Claimed
    );
    assert_eq!(
        store.claim_customer("u", now + 1, 30).await.unwrap(),
        CustomerClaim::Busy
    );
    // A crashed creator's lease lapses and can be taken over.
    assert_eq!(
        store.claim_customer("u", now + 31, 30).await.unwrap(),
        CustomerClaim::Claimed
    );
    assert_eq!(store.save_customer("u", "cus_1").await.unwrap(), "cus_1");
    // A late saver gets the id already on record, not its own.
    assert_eq!(store.save_customer("u", "cus_2").await.unwrap(), "cus_1");
    assert_eq!(
        store.claim_customer("u", now + 100, 30).await.unwrap(),
        CustomerClaim::Existing("cus_1".into())
    );
    store.release_customer_claim("u").await.unwrap();
    assert_eq!(store.customer("u").await.unwrap().as_deref(), Some("cus_1"));

    // Released leases free the way at once.
    assert_eq!(
        store.claim_customer("v", now, 30).await.unwrap(),
        CustomerClaim::Claimed
    );
    store.release_customer_claim("v").await.unwrap();
    assert_eq!(
        store.claim_customer("v", now + 1, 30).await.unwrap(),
        CustomerClaim::Claimed
    );
}

#[tokio::test]
async fn dynamo_customer_leases() {
    customer_leases(&dynamo_store().await).await;
}

#[tokio::test]
async fn memory_customer_leases() {
    customer_leases(&MemoryStore::new()).await;
}

#[tokio::test]
async fn state_items_carry_the_ttl_attribute() {
    let aws = aws_config().await;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let table = format!("ttl-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoStore::new(client.clone(), &table);
    store.create_table().await.unwrap();
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let description = ttl.time_to_live_description.unwrap();
    assert_eq!(description.attribute_name(), Some("ttl"));
    let (consent, state) = record("bc_ttl", "u1", "2026-11-25T09:00:00Z");
    store.insert_consent(&consent, &state).await.unwrap();
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("STATE#state-bc_ttl".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("STATE".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let ttl: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
    assert!(
        ttl > state.expires_at,
        "kept a while after expiry for reloads"
    );
}

fn owned_by(owner: &str) -> Guard<'_> {
    Guard {
        owner: Some(owner),
        ..Guard::default()
    }
}

/// The same history rules on both stores: a repeat of the status adds no
/// entry, confirming does, and a full history keeps its first entries and
/// puts the newest change last.
async fn bounded_history(store: &dyn ConsentStore) {
    let (consent, state) = record("bc_h", "u1", "2026-11-25T09:00:00Z");
    store.insert_consent(&consent, &state).await.unwrap();
    let any = [
        ConsentStatus::Pending,
        ConsentStatus::Authorized,
        ConsentStatus::Failed,
        ConsentStatus::Expired,
    ];
    let change = |to: ConsentStatus, i: usize, source: ChangeSource| {
        Transition::new(to, at(&format!("2026-11-25T10:00:{i:02}.000000Z")), source)
    };
    let mut record = store
        .transition("bc_h", Guard::default(), &any, &authorize())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.history.len(), 2);
    for i in 0..3 {
        let again = change(ConsentStatus::Authorized, i, ChangeSource::Callback);
        record = store
            .transition("bc_h", Guard::default(), &any, &again)
            .await
            .unwrap()
            .expect("a repeat still applies");
    }
    assert_eq!(record.history.len(), 2, "a repeated status adds no entry");
    let confirm = change(ConsentStatus::Authorized, 3, ChangeSource::Confirm);
    record = store
        .transition("bc_h", Guard::default(), &any, &confirm)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.history.len(), 3, "confirming is recorded");

    for i in 0..(HISTORY_LIMIT + 10) {
        let to = if i % 2 == 0 {
            ConsentStatus::Failed
        } else {
            ConsentStatus::Expired
        };
        record = store
            .transition(
                "bc_h",
                Guard::default(),
                &any,
                &change(to, i, ChangeSource::Revoke),
            )
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(record.history.len(), HISTORY_LIMIT, "bounded");
    assert_eq!(
        record.history[0].source,
        ChangeSource::Create,
        "the first stays"
    );
    let last = record.history.last().unwrap();
    assert_eq!(last.to, record.status, "the newest change is last");
    assert_eq!(last.at, record.updated_at);
    assert_eq!(store.consent("bc_h").await.unwrap().unwrap(), record);
}

#[tokio::test]
async fn dynamo_store_bounds_history() {
    bounded_history(&dynamo_store().await).await;
}

#[tokio::test]
async fn memory_store_bounds_history_alike() {
    bounded_history(&MemoryStore::default()).await;
}

/// The cap on a user's pending links, on both stores: places fill up to the
/// maximum, a freed or lapsed place is taken again, a change out of
/// `pending` frees its link's place, and users do not share places.
fn link<'a>(owner: &'a str, state_id: &'a str, expires_at: i64) -> PendingLink<'a> {
    PendingLink {
        owner,
        state_id,
        expires_at,
    }
}

/// A place for u1's link `id`, asked for at `at`, its state lapsing 900 s on.
async fn take(store: &dyn ConsentStore, id: &str, at: i64) -> PendingPlace {
    store
        .take_pending_place(link("u1", id, at + 900), at, 5)
        .await
        .unwrap()
}

async fn pending_places(store: &dyn ConsentStore) {
    let now = 1_900_000_000;
    let ids: Vec<String> = (0..9).map(|i| format!("s{i}")).collect();
    for (i, id) in ids.iter().take(5).enumerate() {
        let place = store
            .take_pending_place(link("u1", id, now + 900 + i as i64), now, 5)
            .await
            .unwrap();
        assert_eq!(place, PendingPlace::Taken, "place {i}");
    }
    assert_eq!(
        store
            .take_pending_place(link("u1", &ids[5], now + 905), now, 5)
            .await
            .unwrap(),
        PendingPlace::Full {
            frees_at: now + 900
        },
        "the sixth is refused until the first lapses"
    );
    assert_eq!(
        store
            .take_pending_place(link("u2", &ids[5], now + 900), now, 5)
            .await
            .unwrap(),
        PendingPlace::Taken,
        "another user has places of their own"
    );
    store.free_pending_place("u1", &ids[2]).await.unwrap();
    store.free_pending_place("u1", &ids[2]).await.unwrap();
    store.free_pending_place("nobody", &ids[2]).await.unwrap();
    assert_eq!(take(store, &ids[5], now).await, PendingPlace::Taken);
    assert!(matches!(
        take(store, &ids[6], now).await,
        PendingPlace::Full { .. }
    ));
    // Once a state has lapsed, its place is free without a release: at
    // now + 900 the places of s0 and s5 have lapsed.
    assert_eq!(take(store, &ids[6], now + 900).await, PendingPlace::Taken);
    assert_eq!(take(store, &ids[7], now + 900).await, PendingPlace::Taken);
    assert_eq!(
        take(store, &ids[8], now + 900).await,
        PendingPlace::Full {
            frees_at: now + 901
        }
    );

    // A record leaving pending frees its place.
    let (consent, state) = record("bc_place", "u3", "2026-11-25T09:00:00Z");
    store.insert_consent(&consent, &state).await.unwrap();
    let u3 = |id: &'static str| PendingLink {
        owner: "u3",
        state_id: id,
        expires_at: now + 900,
    };
    for id in ["state-bc_place", "a", "b", "c", "d"] {
        assert_eq!(
            store.take_pending_place(u3(id), now, 5).await.unwrap(),
            PendingPlace::Taken
        );
    }
    assert!(matches!(
        store.take_pending_place(u3("e"), now, 5).await.unwrap(),
        PendingPlace::Full { .. }
    ));
    let denied = Transition::new(
        ConsentStatus::Canceled,
        at("2026-11-25T09:05:00Z"),
        ChangeSource::Callback,
    );
    store
        .transition(
            "bc_place",
            Guard::default(),
            &[ConsentStatus::Pending],
            &denied,
        )
        .await
        .unwrap()
        .expect("applied");
    assert_eq!(
        store.take_pending_place(u3("e"), now, 5).await.unwrap(),
        PendingPlace::Taken,
        "the denied link's place is free"
    );
    // Erasure takes the places with the customer.
    store.delete_customer("u3").await.unwrap();
    assert_eq!(
        store.take_pending_place(u3("f"), now, 1).await.unwrap(),
        PendingPlace::Taken
    );
}

#[tokio::test]
async fn dynamo_store_caps_pending_links() {
    pending_places(&dynamo_store().await).await;
}

#[tokio::test]
async fn memory_store_caps_pending_links_alike() {
    pending_places(&MemoryStore::new()).await;
}

#[tokio::test]
async fn fifty_concurrent_places_never_pass_the_cap() {
    let store = dynamo_store().await;
    let now = 1_900_000_000;
    let attempts = (0..50).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let id = format!("race-{i}");
            let link = PendingLink {
                owner: "racer",
                state_id: &id,
                expires_at: now + 900,
            };
            store.take_pending_place(link, now, 5).await
        })
    });
    let outcomes: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let taken = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(PendingPlace::Taken)))
        .count();
    let full = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(PendingPlace::Full { .. })))
        .count();
    assert_eq!((taken, full), (5, 45), "{outcomes:?}");
}

/// A consent's whole life, each change setting what it comes with, until
/// every milestone is set: `(statuses it may start from, the change)`.
fn whole_life() -> Vec<(Vec<ConsentStatus>, Transition)> {
    use ConsentStatus::{Authorized, Canceled, Pending, RevokePending};
    let base = at("2026-11-25T10:00:00.123456Z");
    let minute = |n: i64| base + time::Duration::minutes(n);
    let change = |to, n, source| Transition::new(to, minute(n), source);

    let mut approved = change(Authorized, 1, ChangeSource::Callback);
    approved.set.provider = Some("sandbox-barclays".into());
    approved.set.bank_name = Some("Barclays".into());
    approved.set.authorized_at = Some(at("2026-11-25T10:00:58Z"));
    approved.set.expires_at = Some(at("2027-02-23T10:00:00Z"));
    approved.set.confirm_code_hash = Some("h".repeat(43));
    approved.set.confirm_by = Some(minute(11));
    approved.due = Due::At(minute(11));
    let mut confirmed = change(Authorized, 2, ChangeSource::Confirm);
    confirmed.set.confirmed_at = Some(minute(2));
    confirmed.confirmed_by = Some(ConfirmedBy::Verifier);
    let mut renewed = change(Authorized, 3, ChangeSource::Reconfirm);
    renewed.set.renewed_at = Some(minute(3));
    renewed.set.expires_at = Some(at("2027-02-24T10:00:00Z"));
    let mut reminded = change(Authorized, 4, ChangeSource::Webhook);
    reminded.set.expiry_reminder_at = Some(minute(4));
    let mut asked = change(RevokePending, 5, ChangeSource::Revoke);
    asked.set.revoke_requested_at = Some(minute(5));
    asked.set.revoke_reason = Some("unconfirmed".into());
    asked.due = Due::At(minute(6));
    let mut revoked = change(Canceled, 6, ChangeSource::Revoke);
    revoked.set.revoked_at = Some(minute(6));
    vec![
        (vec![Pending], approved),
        (vec![Authorized], confirmed),
        (vec![Authorized], renewed),
        (vec![Authorized], reminded),
        (vec![Authorized], asked),
        (vec![RevokePending], revoked),
    ]
}

/// Lives a consent's whole life on `store`, checking each change's answer
/// against the same change applied in memory; returns the last record.
async fn live_whole_life(store: &dyn ConsentStore, id: &str) -> ConsentRecord {
    let (mut expected, state) = record(id, "u1", "2026-11-25T10:00:00.123456Z");
    store.insert_consent(&expected, &state).await.unwrap();
    for (from, change) in whole_life() {
        change.apply(&mut expected);
        let answered = store
            .transition(id, Guard::default(), &from, &change)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{:?} from {from:?} applies", change.to));
        assert_eq!(answered, expected, "{:?}", change.source);
    }
    assert_eq!(store.consent(id).await.unwrap().unwrap(), expected);
    expected
}

/// Every milestone set, and none: DynamoDB gives back the record it was
/// given, whether put whole or reached change by change, and keeps each
/// milestone as a top-level attribute in the fixed-width time format.
#[tokio::test]
async fn dynamo_store_round_trips_every_milestone_and_none() {
    let (store, client, table) = dynamo_table().await;
    let (fresh, fresh_state) = record("bc_fresh", "u1", "2026-11-25T09:00:00Z");
    assert_eq!(fresh.milestones, Milestones::default());
    store.insert_consent(&fresh, &fresh_state).await.unwrap();
    assert_eq!(store.consent("bc_fresh").await.unwrap().unwrap(), fresh);

    let lived = live_whole_life(&store, "bc_life").await;
    assert_eq!(lived, live_whole_life(&MemoryStore::new(), "bc_life").await);
    let item = consent_item(&client, &table, "bc_life").await;
    for field in Milestones::FIELDS {
        assert!(item.contains_key(*field), "{field} set and stored");
    }
    assert_eq!(
        item["authorized_at"].as_s().unwrap(),
        "2026-11-25T10:00:58.000000Z"
    );
    assert_eq!(
        item["revoked_at"].as_s().unwrap(),
        "2026-11-25T10:06:00.123456Z"
    );
    assert!(!item.contains_key("milestones"), "flattened, not nested");

    // Put whole, with a due time too.
    let mut whole = lived.clone();
    whole.consent_id = "bc_whole".into();
    whole.state_id = "state-bc_whole".into();
    whole.due_at = Some(at("2026-11-26T00:00:00Z"));
    let (_, whole_state) = record("bc_whole", "u1", "2026-11-25T09:00:00Z");
    store.insert_consent(&whole, &whole_state).await.unwrap();
    assert_eq!(store.consent("bc_whole").await.unwrap().unwrap(), whole);
    let listed = store
        .consents_of(
            "u1",
            &Page {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap()
        .records;
    assert!(listed.contains(&whole) && listed.contains(&fresh));
}

/// A stored time that does not read is the store's error, not a panic,
/// and names what it could not read.
#[tokio::test]
async fn a_stored_time_that_does_not_read_is_a_store_error() {
    let (store, client, table) = dynamo_table().await;
    let (consent, state) = record("bc_bad", "u1", "2026-11-25T09:00:00Z");
    store.insert_consent(&consent, &state).await.unwrap();
    let mut item = consent_item(&client, &table, "bc_bad").await;
    item.insert(
        "confirm_by".into(),
        aws_sdk_dynamodb::types::AttributeValue::S("tomorrow".into()),
    );
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    let error = store.consent("bc_bad").await.unwrap_err();
    assert!(
        matches!(error, shared::Error::Internal(ref why) if why.contains("\"tomorrow\"")),
        "{error:?}"
    );
}

async fn consent_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue::S;
    client
        .get_item()
        .table_name(table)
        .key("pk", S(format!("CONSENT#{id}")))
        .key("sk", S("CONSENT".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}
