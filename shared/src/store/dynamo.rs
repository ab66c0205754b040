//! The consent store on DynamoDB, one table:
//!
//! | item      | pk                 | sk         | other attributes |
//! |-----------|--------------------|------------|------------------|
//! | consent   | `CONSENT#<id>`     | `CONSENT`  | the [`ConsentRecord`] fields (the confirmation code only as `confirm_code_hash`), `owner_pk` = `OWNER#<sub>`, `owner_sk` = `<created_at>#<id>` (index `by_owner`); `due_pk` = `DUE` and `due_at` only while the reconciler should look at it (sparse index `due`) |
//! | customer  | `USER#<sub>`       | `CUSTOMER` | `customer_id`, or `lease_until` while one is being created |
//! | pending   | `USER#<sub>`       | `PENDING`  | `links`: map of state `jti` to its expiry (Unix seconds), one per pending link; `version`, bumped by every write; `ttl` |
//! | state     | `STATE#<jti>`      | `STATE`    | `consent_id`, `owner`, `expires_at`, `used_at`, `ttl` (TTL attribute) |
//! | event     | `EVENT#<id>`       | `EVENT`    | `ttl`: a webhook event already handled |

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};

use super::*;
use crate::error::Error;

pub const OWNER_INDEX: &str = "by_owner";
/// Sparse: only records the reconciler should look at are in it.
pub const DUE_INDEX: &str = "due";
/// The one partition of the due index. The reconciler reads it in time
/// order; its writes are a few per consent, far below a partition's limit.
const DUE_PARTITION: &str = "DUE";
pub const TTL_ATTRIBUTE: &str = "ttl";
/// Used states stay readable a while past their expiry, so a reload is told
/// "already used" rather than "unknown".
const STATE_RETENTION_SECONDS: i64 = 24 * 3600;

type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn consent_key(id: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("CONSENT#{id}"))),
        ("sk".into(), s("CONSENT")),
    ])
}

fn customer_key(owner: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("USER#{owner}"))),
        ("sk".into(), s("CUSTOMER")),
    ])
}

fn pending_key(owner: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("USER#{owner}"))),
        ("sk".into(), s("PENDING")),
    ])
}

/// How often a place is asked for again after another request changed the
/// owner's pending item in between. Each lost race is another request's
/// write: one user's requests at once take turns, so this allows a few
/// dozen of them before one is answered 503 `busy`.
const PENDING_ATTEMPTS: usize = 40;

fn event_key(id: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("EVENT#{id}"))),
        ("sk".into(), s("EVENT")),
    ])
}

fn state_key(id: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("STATE#{id}"))),
        ("sk".into(), s("STATE")),
    ])
}

fn unavailable<E>(operation: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    crate::error::from_aws(operation, &err, Error::StoreUnavailable)
}

fn corrupt(err: serde_dynamo::Error) -> Error {
    Error::Internal(format!("stored item does not decode: {err}"))
}

/// An UpdateItem's expression, condition and values for a transition.
struct TransitionUpdate {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: Item,
}

/// The update for `change` with one `effect` on the history, conditioned so
/// that it applies only when that effect is the right one for the stored
/// record (`Transition::history_effect`, the same rule in memory).
fn transition_update(
    guard: Guard<'_>,
    from: &[ConsentStatus],
    change: &Transition,
    effect: HistoryEffect,
) -> Result<TransitionUpdate> {
    let entry = serde_dynamo::to_attribute_value(change.entry()).map_err(corrupt)?;
    let mut names = HashMap::from([("#status".to_owned(), "status".to_owned())]);
    let mut values: Item = HashMap::from([
        (":to".into(), s(change.to.as_str())),
        (":at".into(), s(change.at.to_string())),
    ]);
    let mut update = vec!["#status = :to".to_owned(), "updated_at = :at".to_owned()];
    let changes_status = if change.always_recorded() {
        String::new()
    } else {
        " AND #status <> :to".to_owned()
    };
    let history_condition = match effect {
        HistoryEffect::Append => {
            update.push("history = list_append(if_not_exists(history, :empty), :entry)".into());
            values.insert(":entry".into(), AttributeValue::L(vec![entry]));
            values.insert(":empty".into(), AttributeValue::L(vec![]));
            values.insert(":limit".into(), n(HISTORY_LIMIT as i64));
            format!(
                "{changes_status} AND (attribute_not_exists(history) OR size(history) < :limit)"
            )
        }
        HistoryEffect::Skip => " AND #status = :to".to_owned(),
        HistoryEffect::ReplaceLast => {
            update.push(format!("history[{}] = :entry", HISTORY_LIMIT - 1));
            values.insert(":entry".into(), entry);
            values.insert(":limit".into(), n(HISTORY_LIMIT as i64));
            format!("{changes_status} AND size(history) >= :limit")
        }
    };
    // The fields it sets, as the record's own item holds them (sorted:
    // the same change, the same expression).
    let set: Item = serde_dynamo::to_item(&change.set).map_err(corrupt)?;
    let mut set: Vec<_> = set.into_iter().collect();
    set.sort_by(|(a, _), (b, _)| a.cmp(b));
    for (field, value) in set {
        update.push(format!("{field} = :{field}"));
        values.insert(format!(":{field}"), value);
    }
    let mut remove = Vec::new();
    match &change.due {
        Due::Keep => {}
        Due::At(at) => {
            update.push("due_pk = :due_pk, due_at = :due_at".into());
            values.insert(":due_pk".into(), s(DUE_PARTITION));
            values.insert(":due_at".into(), s(at.to_string()));
        }
        Due::Clear => remove.push("due_pk, due_at"),
    }

    let placeholders: Vec<String> = (0..from.len()).map(|i| format!(":from{i}")).collect();
    for (placeholder, status) in placeholders.iter().zip(from) {
        values.insert(placeholder.clone(), s(status.as_str()));
    }
    let mut condition = format!(
        "attribute_exists(pk) AND #status IN ({})",
        placeholders.join(", ")
    );
    if let Some(owner) = guard.owner {
        names.insert("#owner".into(), "owner".into());
        values.insert(":owner".into(), s(owner));
        condition.push_str(" AND #owner = :owner");
    }
    if guard.unconfirmed || guard.code.is_some() {
        condition.push_str(" AND attribute_not_exists(confirmed_at)");
    }
    if let Some((hash, now)) = guard.code {
        values.insert(":code".into(), s(hash));
        values.insert(":now".into(), s(now.to_string()));
        // Fixed-width timestamps: text order is time order.
        condition.push_str(" AND confirm_code_hash = :code AND confirm_by > :now");
    }
    if guard.confirmed {
        condition.push_str(" AND attribute_exists(confirmed_at)");
    }
    if let Some(due) = guard.due_at {
        values.insert(":seen_due".into(), s(due.to_string()));
        condition.push_str(" AND due_at = :seen_due");
    }
    condition.push_str(&history_condition);
    let remove = if remove.is_empty() {
        String::new()
    } else {
        format!(" REMOVE {}", remove.join(", "))
    };
    Ok(TransitionUpdate {
        update: format!("SET {}{remove}", update.join(", ")),
        condition,
        names,
        values,
    })
}

impl DynamoStore {
    /// Deletes each item by its key, one call each; an absent item is no error.
    async fn delete_items<const N: usize>(&self, keys: [Item; N]) -> Result<()> {
        for key in keys {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .send()
                .await
                .map_err(|e| unavailable("DeleteItem", e))?;
        }
        Ok(())
    }

    /// Writes consent records as they are, 25 to a `BatchWriteItem` (tests
    /// and benchmarks that need many records fast; feature `test-util`).
    /// No state items: the records stand for links whose states are gone.
    #[cfg(any(test, feature = "test-util"))]
    pub async fn seed_consents(&self, records: &[ConsentRecord]) -> Result<()> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        for chunk in records.chunks(25) {
            let mut requests = chunk
                .iter()
                .map(|record| {
                    let put = PutRequest::builder()
                        .set_item(Some(consent_item(record)?))
                        .build()
                        .map_err(|e| Error::Internal(e.to_string()))?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>>>()?;
            while !requests.is_empty() {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| unavailable("BatchWriteItem", e))?;
                requests = output
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&self.table))
                    .unwrap_or_default();
            }
        }
        Ok(())
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, key: Item) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(output.item)
    }

    /// Creates the table as `infra/template.yaml` defines it (tests and the
    /// local stack; feature `test-util`: a Lambda never creates its table).
    #[cfg(any(test, feature = "test-util"))]
    pub async fn create_table(&self) -> Result<()> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
            Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
        };

        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| Error::Internal(e.to_string()))
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| Error::Internal(e.to_string()))
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(OWNER_INDEX)
            .key_schema(key("owner_pk", KeyType::Hash)?)
            .key_schema(key("owner_sk", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let due_index = GlobalSecondaryIndex::builder()
            .index_name(DUE_INDEX)
            .key_schema(key("due_pk", KeyType::Hash)?)
            .key_schema(key("due_at", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute("sk")?)
            .attribute_definitions(attribute("owner_pk")?)
            .attribute_definitions(attribute("owner_sk")?)
            .attribute_definitions(attribute("due_pk")?)
            .attribute_definitions(attribute("due_at")?)
            .global_secondary_indexes(index)
            .global_secondary_indexes(due_index)
            .send()
            .await
            .map_err(|e| unavailable("CreateTable", e))?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .map_err(|e| Error::Internal(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| unavailable("UpdateTimeToLive", e))?;
        Ok(())
    }
}

fn conditional_failed<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// The live places of a pending item: state id -> expiry, lapsed ones dropped.
fn live_places(item: &Item, now: i64) -> HashMap<String, i64> {
    match item.get("links") {
        Some(AttributeValue::M(links)) => links
            .iter()
            .filter_map(|(jti, lapses)| Some((jti.clone(), lapses.as_n().ok()?.parse().ok()?)))
            .filter(|(_, lapses)| *lapses > now)
            .collect(),
        _ => HashMap::new(),
    }
}

/// What the `due` index holds of a record (its keys).
#[derive(serde::Deserialize)]
struct DueKeys {
    pk: String,
    due_at: Timestamp,
}

fn consent_item(record: &ConsentRecord) -> Result<Item> {
    let mut item: Item = serde_dynamo::to_item(record).map_err(corrupt)?;
    item.extend(consent_key(&record.consent_id));
    item.insert("owner_pk".into(), s(format!("OWNER#{}", record.owner)));
    item.insert("owner_sk".into(), s(record.list_key()));
    if record.due_at.is_some() {
        item.insert("due_pk".into(), s(DUE_PARTITION));
    }
    Ok(item)
}

#[async_trait]
impl ConsentStore for DynamoStore {
    /// A read of a key no record has: `GetItem` is an action every
    /// function's role already has, it costs half a read unit, and it leaves
    /// a TLS connection in the client's pool (and the SDK's signing and
    /// endpoint resolution done once).
    async fn warm_up(&self) -> Result<()> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(HashMap::from([
                ("pk".into(), s("WARM-UP")),
                ("sk".into(), s("WARM-UP")),
            ])))
            .projection_expression("pk")
            .send()
            .await
            .map_err(|e| unavailable("GetItem (warm-up)", e))?;
        Ok(())
    }

    async fn customer(&self, owner: &str) -> Result<Option<String>> {
        let item = self.get(customer_key(owner)).await?;
        Ok(item.and_then(|item| match item.get("customer_id") {
            Some(AttributeValue::S(id)) => Some(id.clone()),
            _ => None,
        }))
    }

    async fn claim_customer(
        &self,
        owner: &str,
        now: i64,
        lease_seconds: i64,
    ) -> Result<CustomerClaim> {
        let mut item = customer_key(owner);
        item.insert("lease_until".into(), n(now + lease_seconds));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR (attribute_not_exists(customer_id) AND lease_until < :now)",
            )
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(CustomerClaim::Claimed),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(match self.customer(owner).await? {
                    Some(id) => CustomerClaim::Existing(id),
                    None => CustomerClaim::Busy,
                })
            }
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }

    async fn save_customer(&self, owner: &str, customer_id: &str) -> Result<String> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(customer_key(owner)))
            .update_expression("SET customer_id = :id REMOVE lease_until")
            .condition_expression("attribute_not_exists(customer_id)")
            .expression_attribute_values(":id", s(customer_id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(customer_id.to_owned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                self.customer(owner).await?.ok_or_else(|| {
                    Error::Internal("customer item changed while it was saved".into())
                })
            }
            Err(e) => Err(unavailable("UpdateItem", e)),
        }
    }

    async fn release_customer_claim(&self, owner: &str) -> Result<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(customer_key(owner)))
            .condition_expression("attribute_not_exists(customer_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(unavailable("DeleteItem", e)),
        }
    }

    /// Read, count the live places, write back with the version read as the
    /// condition: a concurrent change makes the write fail and the count is
    /// taken again, so no two requests fill the same place. Lapsed places are
    /// dropped by every write.
    async fn take_pending_place(
        &self,
        link: PendingLink<'_>,
        now: i64,
        max: usize,
    ) -> Result<PendingPlace> {
        for attempt in 0..PENDING_ATTEMPTS {
            let item = self.get(pending_key(link.owner)).await?;
            let version = item
                .as_ref()
                .and_then(|item| item.get("version")?.as_n().ok()?.parse::<i64>().ok());
            let mut places = item
                .as_ref()
                .map_or_else(HashMap::new, |item| live_places(item, now));
            if places.len() >= max {
                let frees_at = places.values().copied().min().unwrap_or(now);
                return Ok(PendingPlace::Full { frees_at });
            }
            places.insert(link.state_id.to_owned(), link.expires_at);
            let last_lapse = places.values().copied().max().unwrap_or(link.expires_at);
            let mut new_item = pending_key(link.owner);
            new_item.insert(
                "links".into(),
                AttributeValue::M(places.into_iter().map(|(k, v)| (k, n(v))).collect()),
            );
            new_item.insert("version".into(), n(version.unwrap_or(0) + 1));
            new_item.insert(
                TTL_ATTRIBUTE.into(),
                n(last_lapse + STATE_RETENTION_SECONDS),
            );
            let request = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(new_item));
            let request = match version {
                Some(version) => request
                    .condition_expression("version = :seen")
                    .expression_attribute_values(":seen", n(version)),
                None => request.condition_expression("attribute_not_exists(pk)"),
            };
            match request.send().await {
                Ok(_) => return Ok(PendingPlace::Taken),
                Err(e) if conditional_failed(&e) => {
                    // Spread the next try so the losers do not meet again.
                    let jitter = rand::random::<u64>() % (10 * (attempt as u64 + 1)).min(200);
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
                Err(e) => return Err(unavailable("PutItem", e)),
            }
        }
        Err(Error::Busy(
            "Too many links are being created for you at once; try again in a moment.".into(),
        ))
    }

    async fn free_pending_place(&self, owner: &str, state_id: &str) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(pending_key(owner)))
            .update_expression("REMOVE links.#jti ADD version :one")
            .condition_expression("attribute_exists(links.#jti)")
            .expression_attribute_names("#jti", state_id)
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let item = match result {
            Ok(output) => output.attributes.unwrap_or_default(),
            Err(e) if conditional_failed(&e) => return Ok(()),
            Err(e) => return Err(unavailable("UpdateItem", e)),
        };
        // The last place freed: the item goes, unless a place was taken since.
        let empty = matches!(item.get("links"), Some(AttributeValue::M(links)) if links.is_empty());
        if let (true, Some(version)) = (empty, item.get("version")) {
            let deleted = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(pending_key(owner)))
                .condition_expression("version = :seen")
                .expression_attribute_values(":seen", version.clone())
                .send()
                .await;
            match deleted {
                Ok(_) => {}
                Err(e) if conditional_failed(&e) => {}
                Err(e) => return Err(unavailable("DeleteItem", e)),
            }
        }
        Ok(())
    }

    async fn insert_consent(&self, consent: &ConsentRecord, state: &StateRecord) -> Result<()> {
        let mut state_item = state_key(&state.state_id);
        state_item.insert("consent_id".into(), s(&state.consent_id));
        state_item.insert("owner".into(), s(&state.owner));
        state_item.insert("expires_at".into(), n(state.expires_at));
        state_item.insert(
            TTL_ATTRIBUTE.into(),
            n(state.expires_at + STATE_RETENTION_SECONDS),
        );
        let put = |item: Item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| Error::Internal(e.to_string()))
        };
        self.client
            .transact_write_items()
            .transact_items(put(consent_item(consent)?)?)
            .transact_items(put(state_item)?)
            .send()
            .await
            .map_err(|e| unavailable("TransactWriteItems", e))?;
        Ok(())
    }

    async fn consent(&self, consent_id: &str) -> Result<Option<ConsentRecord>> {
        match self.get(consent_key(consent_id)).await? {
            Some(item) => Ok(Some(serde_dynamo::from_item(item).map_err(corrupt)?)),
            None => Ok(None),
        }
    }

    async fn consents_of(&self, owner: &str, page: &Page) -> Result<Listing> {
        let start_key = page.after.as_ref().and_then(|after| {
            let (_, consent_id) = after.split_once('#')?;
            let mut key = consent_key(consent_id);
            key.insert("owner_pk".into(), s(format!("OWNER#{owner}")));
            key.insert("owner_sk".into(), s(after));
            Some(key)
        });
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OWNER_INDEX)
            .key_condition_expression("owner_pk = :owner")
            .expression_attribute_values(":owner", s(format!("OWNER#{owner}")))
            .scan_index_forward(false)
            .limit(page.limit.min(LIST_LIMIT) as i32)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|e| unavailable("Query", e))?;
        let records = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(corrupt))
            .collect::<Result<Vec<ConsentRecord>>>()?;
        let next = output
            .last_evaluated_key
            .and(records.last())
            .map(ConsentRecord::list_key);
        Ok(Listing { records, next })
    }

    async fn consume_state(
        &self,
        state_id: &str,
        consent_id: &str,
        now: i64,
        from: &[ConsentStatus],
        change: &Transition,
    ) -> Result<ConsumeOutcome> {
        let consume = Update::builder()
            .table_name(&self.table)
            .set_key(Some(state_key(state_id)))
            .update_expression("SET used_at = :now")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(used_at) \
                 AND consent_id = :consent AND expires_at > :now",
            )
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":consent", s(consent_id))
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let plan = transition_update(Guard::default(), from, change, HistoryEffect::Append)?;
        let apply = Update::builder()
            .table_name(&self.table)
            .set_key(Some(consent_key(consent_id)))
            .update_expression(plan.update)
            .condition_expression(plan.condition)
            .set_expression_attribute_names(Some(plan.names))
            .set_expression_attribute_values(Some(plan.values))
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(consume).build())
            .transact_items(TransactWriteItem::builder().update(apply).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(ConsumeOutcome::Applied),
            Err(e) => {
                let reasons: Vec<Option<String>> = match e.as_service_error() {
                    Some(
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancel),
                    ) => cancel
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().map(str::to_owned))
                        .collect(),
                    _ => return Err(unavailable("TransactWriteItems", e)),
                };
                let code = |i: usize| reasons.get(i).and_then(|c| c.as_deref());
                // A conflict on the state item means a concurrent callback is
                // consuming the same state: for this request it is used.
                if matches!(
                    code(0),
                    Some("ConditionalCheckFailed" | "TransactionConflict")
                ) {
                    Ok(ConsumeOutcome::StateUnusable)
                } else if code(1) == Some("ConditionalCheckFailed") {
                    Ok(ConsumeOutcome::ConsentChanged)
                } else {
                    // A conflict on the consent item alone: retryable.
                    Err(unavailable("TransactWriteItems", e))
                }
            }
        }
    }

    async fn transition(
        &self,
        consent_id: &str,
        guard: Guard<'_>,
        from: &[ConsentStatus],
        change: &Transition,
    ) -> Result<Option<ConsentRecord>> {
        // One conditional write per history effect, most likely first: the
        // stored record's own state picks the one that applies.
        let mut effects = vec![HistoryEffect::Append];
        if !change.always_recorded() && from.contains(&change.to) {
            effects.push(HistoryEffect::Skip);
        }
        effects.push(HistoryEffect::ReplaceLast);
        for effect in effects {
            let plan = transition_update(guard, from, change, effect)?;
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(consent_key(consent_id)))
                .update_expression(plan.update)
                .condition_expression(plan.condition)
                .set_expression_attribute_names(Some(plan.names))
                .set_expression_attribute_values(Some(plan.values))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match result {
                Ok(output) => {
                    let item = output.attributes.unwrap_or_default();
                    let record: ConsentRecord = serde_dynamo::from_item(item).map_err(corrupt)?;
                    if record.left_pending() {
                        // Lost, the place lapses with the state.
                        if let Err(e) = self
                            .free_pending_place(&record.owner, &record.state_id)
                            .await
                        {
                            tracing::warn!(error = %e, "pending place not freed; it lapses");
                        }
                    }
                    return Ok(Some(record));
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(unavailable("UpdateItem", e)),
            }
        }
        Ok(None)
    }

    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
        after: Option<&DueCursor>,
    ) -> Result<DuePage> {
        let start_key = after.map(|cursor| {
            let mut key = consent_key(&cursor.consent_id);
            key.insert("due_pk".into(), s(DUE_PARTITION));
            key.insert("due_at".into(), s(cursor.due_at.to_string()));
            key
        });
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("due_pk = :due AND due_at <= :now")
            .expression_attribute_values(":due", s(DUE_PARTITION))
            .expression_attribute_values(":now", s(now.to_string()))
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|e| unavailable("Query", e))?;
        let records = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                let keys: DueKeys = serde_dynamo::from_item(item).map_err(corrupt)?;
                let id = keys
                    .pk
                    .strip_prefix("CONSENT#")
                    .unwrap_or(&keys.pk)
                    .to_owned();
                Ok((id, keys.due_at))
            })
            .collect::<Result<Vec<_>>>()?;
        let next = output
            .last_evaluated_key
            .and(records.last())
            .map(|(consent_id, due_at)| DueCursor {
                due_at: *due_at,
                consent_id: consent_id.clone(),
            });
        Ok(DuePage { records, next })
    }

    async fn move_due(
        &self,
        consent_id: &str,
        seen: Timestamp,
        to: Option<Timestamp>,
    ) -> Result<Option<ConsentRecord>> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(consent_key(consent_id)))
            .condition_expression("attribute_exists(pk) AND due_at = :seen")
            .expression_attribute_values(":seen", s(seen.to_string()))
            .return_values(ReturnValue::AllNew);
        let request = match to {
            Some(to) => request
                .update_expression("SET due_at = :to, due_pk = :due")
                .expression_attribute_values(":to", s(to.to_string()))
                .expression_attribute_values(":due", s(DUE_PARTITION)),
            None => request.update_expression("REMOVE due_at, due_pk"),
        };
        match request.send().await {
            Ok(output) => {
                let item = output.attributes.unwrap_or_default();
                Ok(Some(serde_dynamo::from_item(item).map_err(corrupt)?))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(unavailable("UpdateItem", e)),
        }
    }

    async fn record_event(&self, event_id: &str, expires_at: i64) -> Result<bool> {
        let mut item = event_key(event_id);
        item.insert(TTL_ATTRIBUTE.into(), n(expires_at));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable("PutItem", e)),
        }
    }

    async fn forget_event(&self, event_id: &str) -> Result<()> {
        self.delete_items([event_key(event_id)]).await
    }

    async fn delete_consent(&self, consent_id: &str, state_id: &str) -> Result<()> {
        self.delete_items([consent_key(consent_id), state_key(state_id)])
            .await
    }

    async fn delete_customer(&self, owner: &str) -> Result<()> {
        self.delete_items([customer_key(owner), pending_key(owner)])
            .await
    }
}
