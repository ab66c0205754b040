//! In-memory records behind one mutex. Nothing awaits while the lock is held,
//! so a std mutex is enough and keeps every operation atomic.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use time::Duration as TimeSpan;
use tokio::sync::mpsc::UnboundedSender;

use crate::clock::Timestamp;
use crate::model::{Consent, ConsentStatus, Customer};

/// Finexer cancels a consent nobody acted on after seven days.
const PENDING_LIFETIME: TimeSpan = TimeSpan::days(7);

#[derive(Default)]
struct Records {
    customers: HashMap<String, Customer>,
    /// In creation order, which is the order lists are returned in.
    consents: Vec<Consent>,
    consent_positions: HashMap<String, usize>,
}

pub struct Store {
    records: Mutex<Records>,
    /// Receives a copy of a consent each time its status changes (for webhooks).
    status_changes: Option<UnboundedSender<Consent>>,
}

impl Store {
    pub fn new(status_changes: Option<UnboundedSender<Consent>>) -> Self {
        Self {
            records: Mutex::new(Records::default()),
            status_changes,
        }
    }

    pub fn insert_customer(&self, customer: Customer) {
        self.lock().customers.insert(customer.id.clone(), customer);
    }

    pub fn customer(&self, id: &str) -> Option<Customer> {
        self.lock().customers.get(id).cloned()
    }

    pub fn insert_consent(&self, consent: Consent) {
        let mut records = self.lock();
        let position = records.consents.len();
        records
            .consent_positions
            .insert(consent.id.clone(), position);
        records.consents.push(consent);
    }

    pub fn consent(&self, id: &str) -> Option<Consent> {
        let now = Timestamp::now();
        let mut records = self.lock();
        let position = *records.consent_positions.get(id)?;
        let consent = &mut records.consents[position];
        self.apply_lapses(consent, now);
        Some(consent.clone())
    }

    /// Every consent that passes `keep`, in creation order.
    pub fn consents_where(&self, keep: impl Fn(&Consent) -> bool) -> Vec<Consent> {
        let now = Timestamp::now();
        let mut records = self.lock();
        let mut found = Vec::new();
        for consent in records.consents.iter_mut() {
            self.apply_lapses(consent, now);
            if keep(consent) {
                found.push(consent.clone());
            }
        }
        found
    }

    /// Applies `change` to a copy and stores it only if `change` succeeds, so a
    /// rejected update leaves no trace. `Ok(None)` means there is no such consent.
    pub fn update_consent<E>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Consent) -> Result<(), E>,
    ) -> Result<Option<Consent>, E> {
        let now = Timestamp::now();
        let mut records = self.lock();
        let Some(&position) = records.consent_positions.get(id) else {
            return Ok(None);
        };
        let stored = &mut records.consents[position];
        self.apply_lapses(stored, now);
        let mut updated = stored.clone();
        change(&mut updated)?;
        updated.updated_at = now;
        let status_changed = updated.status != stored.status;
        *stored = updated.clone();
        if status_changed {
            self.announce(&updated);
        }
        Ok(Some(updated))
    }

    /// Status changes that happen with time alone, checked whenever a consent is read.
    fn apply_lapses(&self, consent: &mut Consent, now: Timestamp) {
        let lapsed_to = match consent.status {
            ConsentStatus::Pending if consent.created_at.plus(PENDING_LIFETIME) <= now => {
                ConsentStatus::Canceled
            }
            ConsentStatus::Authorized
                if consent.expiry_date.is_some_and(|expiry| expiry <= now) =>
            {
                ConsentStatus::Expired
            }
            _ => return,
        };
        consent.status = lapsed_to;
        consent.updated_at = now;
        self.announce(consent);
    }

    fn announce(&self, consent: &Consent) {
        if let Some(listener) = &self.status_changes {
            // A closed listener only means nobody wants webhooks any more.
            let _ = listener.send(consent.clone());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
