//! The store's semantics in memory, for logic tests and benchmarks. The
//! DynamoDB tests run the same scenarios against `DynamoStore`.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;

#[derive(Default)]
struct Tables {
    customers: HashMap<String, (Option<String>, Option<i64>)>,
    consents: HashMap<String, ConsentRecord>,
    states: HashMap<String, (StateRecord, bool)>,
    events: HashMap<String, i64>,
    /// Owner -> state id -> when it lapses.
    pending: HashMap<String, HashMap<String, i64>>,
}

#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave half a write behind
        // (every write is one insert), so a poisoned lock is still usable.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Frees a pending place; the owner's entry goes with the last one (as the
/// DynamoDB item does).
fn free_place(tables: &mut Tables, owner: &str, state_id: &str) {
    if let Some(places) = tables.pending.get_mut(owner) {
        places.remove(state_id);
        if places.is_empty() {
            tables.pending.remove(owner);
        }
    }
}

fn matches(record: &ConsentRecord, guard: Guard<'_>, from: &[ConsentStatus]) -> bool {
    from.contains(&record.status) && guard.admits(record)
}

#[async_trait]
impl ConsentStore for MemoryStore {
    async fn customer(&self, owner: &str) -> Result<Option<String>> {
        Ok(self
            .tables()
            .customers
            .get(owner)
            .and_then(|(id, _)| id.clone()))
    }

    async fn claim_customer(
        &self,
        owner: &str,
        now: i64,
        lease_seconds: i64,
    ) -> Result<CustomerClaim> {
        let mut tables = self.tables();
        match tables.customers.get(owner) {
            Some((Some(id), _)) => Ok(CustomerClaim::Existing(id.clone())),
            Some((None, Some(lease_until))) if *lease_until >= now => Ok(CustomerClaim::Busy),
            _ => {
                tables
                    .customers
                    .insert(owner.to_owned(), (None, Some(now + lease_seconds)));
                Ok(CustomerClaim::Claimed)
            }
        }
    }

    async fn save_customer(&self, owner: &str, customer_id: &str) -> Result<String> {
        let mut tables = self.tables();
        let entry = tables
            .customers
            .entry(owner.to_owned())
            .or_insert((None, None));
        if entry.0.is_none() {
            *entry = (Some(customer_id.to_owned()), None);
        }
        Ok(entry.0.clone().unwrap_or_default())
    }

    async fn release_customer_claim(&self, owner: &str) -> Result<()> {
        let mut tables = self.tables();
        if matches!(tables.customers.get(owner), Some((None, _))) {
            tables.customers.remove(owner);
        }
        Ok(())
    }

    async fn take_pending_place(
        &self,
        link: PendingLink<'_>,
        now: i64,
        max: usize,
    ) -> Result<PendingPlace> {
        let mut tables = self.tables();
        let places = tables.pending.entry(link.owner.to_owned()).or_default();
        places.retain(|_, lapses| *lapses > now);
        if places.len() >= max {
            let frees_at = places.values().copied().min().unwrap_or(now);
            return Ok(PendingPlace::Full { frees_at });
        }
        places.insert(link.state_id.to_owned(), link.expires_at);
        Ok(PendingPlace::Taken)
    }

    async fn free_pending_place(&self, owner: &str, state_id: &str) -> Result<()> {
        free_place(&mut self.tables(), owner, state_id);
        Ok(())
    }

    async fn insert_consent(&self, consent: &ConsentRecord, state: &StateRecord) -> Result<()> {
        let mut tables = self.tables();
        if tables.consents.contains_key(&consent.consent_id)
            || tables.states.contains_key(&state.state_id)
        {
            return Err(crate::Error::Internal(
                "consent or state already recorded".into(),
            ));
        }
        tables
            .consents
            .insert(consent.consent_id.clone(), consent.clone());
        tables
            .states
            .insert(state.state_id.clone(), (state.clone(), false));
        Ok(())
    }

    async fn consent(&self, consent_id: &str) -> Result<Option<ConsentRecord>> {
        Ok(self.tables().consents.get(consent_id).cloned())
    }

    async fn consents_of(&self, owner: &str, page: &Page) -> Result<Listing> {
        let mut list: Vec<ConsentRecord> = self
            .tables()
            .consents
            .values()
            .filter(|c| c.owner == owner)
            .filter(|c| {
                page.after
                    .as_ref()
                    .is_none_or(|after| c.list_key() < *after)
            })
            .cloned()
            .collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.list_key()));
        let next = (list.len() > page.limit).then(|| list[page.limit - 1].list_key());
        list.truncate(page.limit);
        Ok(Listing {
            records: list,
            next,
        })
    }

    async fn consume_state(
        &self,
        state_id: &str,
        consent_id: &str,
        now: i64,
        from: &[ConsentStatus],
        change: &Transition,
    ) -> Result<ConsumeOutcome> {
        let mut tables = self.tables();
        let usable = matches!(
            tables.states.get(state_id),
            Some((state, false)) if state.consent_id == consent_id && state.expires_at > now
        );
        if !usable {
            return Ok(ConsumeOutcome::StateUnusable);
        }
        match tables.consents.get_mut(consent_id) {
            Some(record) if matches(record, Guard::default(), from) => change.apply(record),
            _ => return Ok(ConsumeOutcome::ConsentChanged),
        }
        if let Some((_, used)) = tables.states.get_mut(state_id) {
            *used = true;
        }
        Ok(ConsumeOutcome::Applied)
    }

    async fn transition(
        &self,
        consent_id: &str,
        guard: Guard<'_>,
        from: &[ConsentStatus],
        change: &Transition,
    ) -> Result<Option<ConsentRecord>> {
        let mut tables = self.tables();
        match tables.consents.get_mut(consent_id) {
            Some(record) if matches(record, guard, from) => {
                change.apply(record);
                let record = record.clone();
                if record.left_pending() {
                    free_place(&mut tables, &record.owner, &record.state_id);
                }
                Ok(Some(record))
            }
            _ => Ok(None),
        }
    }

    async fn due(
        &self,
        now: Timestamp,
        limit: usize,
        after: Option<&DueCursor>,
    ) -> Result<DuePage> {
        let mut due: Vec<(Timestamp, String)> = self
            .tables()
            .consents
            .values()
            .filter_map(|c| Some((c.due_at?, c.consent_id.clone())))
            .filter(|(at, _)| *at <= now)
            .filter(|(at, id)| {
                after.is_none_or(|cursor| (at, id) > (&cursor.due_at, &cursor.consent_id))
            })
            .collect();
        due.sort();
        let next = (due.len() > limit).then(|| DueCursor {
            due_at: due[limit - 1].0,
            consent_id: due[limit - 1].1.clone(),
        });
        due.truncate(limit);
        Ok(DuePage {
            records: due.into_iter().map(|(at, id)| (id, at)).collect(),
            next,
        })
    }

    async fn move_due(
        &self,
        consent_id: &str,
        seen: Timestamp,
        to: Option<Timestamp>,
    ) -> Result<Option<ConsentRecord>> {
        let mut tables = self.tables();
        match tables.consents.get_mut(consent_id) {
            Some(record) if record.due_at == Some(seen) => {
                record.due_at = to;
                Ok(Some(record.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn record_event(&self, event_id: &str, expires_at: i64) -> Result<bool> {
        let mut tables = self.tables();
        if tables.events.contains_key(event_id) {
            return Ok(false);
        }
        tables.events.insert(event_id.to_owned(), expires_at);
        Ok(true)
    }

    async fn forget_event(&self, event_id: &str) -> Result<()> {
        self.tables().events.remove(event_id);
        Ok(())
    }

    async fn delete_consent(&self, consent_id: &str, state_id: &str) -> Result<()> {
        let mut tables = self.tables();
        tables.consents.remove(consent_id);
        tables.states.remove(state_id);
        Ok(())
    }

    async fn delete_customer(&self, owner: &str) -> Result<()> {
        let mut tables = self.tables();
        tables.customers.remove(owner);
        tables.pending.remove(owner);
        Ok(())
    }
}
