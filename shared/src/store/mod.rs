//! Consent records, the user's Finexer customer, and single-use states.
//!
//! Handlers see only the [`ConsentStore`] trait: [`dynamo::DynamoStore`] is the
//! real one, `memory::MemoryStore` (feature `test-util`, never in a Lambda)
//! runs the same logic in memory for unit tests and benchmarks. The DynamoDB
//! item layout is in `dynamo.rs` and the README.

pub mod dynamo;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::consent::ConsentStatus;
use crate::error::Result;
use crate::timestamp::Timestamp;

/// What changed a consent's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    Create,
    Callback,
    /// The owner confirmed the consent with the callback's one-time code.
    Confirm,
    Revoke,
    /// A signed Finexer event, applied as Finexer reads now.
    Webhook,
    /// The scheduled reconciler, applying what Finexer reads now.
    Reconcile,
    /// The owner re-confirmed the consent (the UK 90-day rule).
    Reconfirm,
}

/// How the owner proved a confirmation was theirs, as its history entry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmedBy {
    /// The link's `code_verifier`, which only the tab that started it holds.
    Verifier,
    /// The person said yes after seeing the bank (`confirmed_by_user`).
    User,
    /// The code alone: a link created without a `code_challenge`.
    Code,
}

/// One entry of a consent's history. `from` is not stored: it is the `to` of
/// the entry before, so it can never disagree with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub at: Timestamp,
    pub to: ConsentStatus,
    pub source: ChangeSource,
    /// Why, when the system (not the owner) made the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How a confirmation was proved (entries with source `confirm` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<ConfirmedBy>,
}

/// Declares [`Milestones`] from one list of its fields, with what each
/// shares: optional, left out of the stored item while unset, and set by a
/// patch only when the patch has it.
macro_rules! milestones {
    ($($(#[$doc:meta])* $field:ident: $kind:ty,)*) => {
        /// What a consent gains along its life: the times of its milestones
        /// and what came with them. A [`ConsentRecord`] holds them; a
        /// [`Transition`] holds those it sets (unset ones leave the record's
        /// as they are). The item mapping and the view read them from here.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Milestones {
            $(
                $(#[$doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$kind>,
            )*
        }

        impl Milestones {
            /// Every field, by its attribute name.
            pub const FIELDS: &[&str] = &[$(stringify!($field)),*];

            /// Sets each field that `patch` has.
            pub fn overlay(&mut self, patch: &Milestones) {
                $(
                    if let Some(value) = &patch.$field {
                        self.$field = Some(value.clone());
                    }
                )*
            }
        }
    };
}

milestones! {
    /// The bank (Finexer's provider id).
    provider: String,
    /// The bank's display name, as Finexer's provider list names `provider`.
    bank_name: String,
    /// When the user approved at the bank (Finexer's `authed_at`).
    authorized_at: Timestamp,
    revoke_requested_at: Timestamp,
    revoked_at: Timestamp,
    /// When the consent itself expires at Finexer (`expiry_date`).
    expires_at: Timestamp,
    /// SHA-256 (base64url) of the one-time confirmation code the callback
    /// handed to the browser; the code itself is never stored.
    confirm_code_hash: String,
    /// Until when that code is accepted; an authorized consent still
    /// unconfirmed after it is revoked.
    confirm_by: Timestamp,
    /// When the owner confirmed it: only then is its data served.
    confirmed_at: Timestamp,
    /// Why the system revoked it, when the owner did not ask (also the
    /// reason of the history entry of the change that sets it).
    revoke_reason: String,
    /// When the user last re-confirmed it at Finexer (`renewed_at`).
    renewed_at: Timestamp,
    /// When Finexer told the user that the consent is about to expire.
    expiry_reminder_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub consent_id: String,
    pub owner: String,
    pub customer_id: String,
    pub status: ConsentStatus,
    /// The link's `code_challenge` (base64url SHA-256 of a verifier that
    /// only the starting tab holds); the verifier itself is never sent here
    /// before the confirm, and never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// The allow-listed frontend URL the callback sends the browser back to.
    pub return_to: String,
    /// The `jti` of the state token issued with this consent (the binding).
    pub state_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Stored as attributes of the record's own item, not a nested map.
    #[serde(flatten)]
    pub milestones: Milestones,
    /// When the reconciler should next look at it; absent while nothing can
    /// change without Finexer telling us (the sparse `due` index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<Timestamp>,
    #[serde(default)]
    pub history: Vec<StatusChange>,
}

/// Who and what a consent is when its record is first written.
pub struct NewRecord<'a> {
    pub consent_id: &'a str,
    pub owner: &'a str,
    pub customer_id: &'a str,
    pub state_id: &'a str,
    pub return_to: &'a str,
    pub status: ConsentStatus,
    /// Created and updated at this time.
    pub at: Timestamp,
}

impl ConsentRecord {
    /// A record as create-link first writes it: one history entry (source
    /// `create`), nothing else set. Callers set what they know beyond it.
    pub fn created(new: NewRecord<'_>) -> ConsentRecord {
        ConsentRecord {
            consent_id: new.consent_id.to_owned(),
            owner: new.owner.to_owned(),
            customer_id: new.customer_id.to_owned(),
            status: new.status.clone(),
            code_challenge: None,
            return_to: new.return_to.to_owned(),
            state_id: new.state_id.to_owned(),
            created_at: new.at,
            updated_at: new.at,
            milestones: Milestones::default(),
            due_at: None,
            history: vec![StatusChange {
                at: new.at,
                to: new.status,
                source: ChangeSource::Create,
                reason: None,
                confirmed_by: None,
            }],
        }
    }

    /// Authorized and confirmed by its owner: its data may be served.
    pub fn is_confirmed(&self) -> bool {
        self.status == ConsentStatus::Authorized && self.milestones.confirmed_at.is_some()
    }

    /// Authorized, never confirmed, and its confirmation window has passed.
    pub fn confirmation_lapsed(&self, now: Timestamp) -> bool {
        self.status == ConsentStatus::Authorized
            && self.milestones.confirmed_at.is_none()
            && self.milestones.confirm_by.is_some_and(|by| by <= now)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRecord {
    pub state_id: String,
    pub consent_id: String,
    pub owner: String,
    /// Unix seconds; past it the state is treated as absent even if the item
    /// is still there (DynamoDB's TTL deletes lazily).
    pub expires_at: i64,
}

/// A status change and the fields that come with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub to: ConsentStatus,
    pub at: Timestamp,
    pub source: ChangeSource,
    /// What it sets besides the status; its `revoke_reason` is also the
    /// history entry's reason.
    pub set: Milestones,
    /// Recorded in the history entry of a confirmation.
    pub confirmed_by: Option<ConfirmedBy>,
    /// What becomes of the record's `due_at`.
    pub due: Due,
}

/// When the reconciler should next look at a record, as a change sets it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Due {
    /// Leave `due_at` as it is.
    #[default]
    Keep,
    At(Timestamp),
    /// Nothing left to look at.
    Clear,
}

impl Due {
    /// `Some(at)` for a time, `Clear` for none.
    pub fn at_or_clear(at: Option<Timestamp>) -> Due {
        at.map_or(Due::Clear, Due::At)
    }
}

impl Transition {
    pub fn new(to: ConsentStatus, at: Timestamp, source: ChangeSource) -> Self {
        // A final status needs no more looks; the others say when.
        let due = if to.is_final() { Due::Clear } else { Due::Keep };
        Transition {
            to,
            at,
            source,
            set: Milestones::default(),
            confirmed_by: None,
            due,
        }
    }

    /// The history entry this change adds.
    pub fn entry(&self) -> StatusChange {
        StatusChange {
            at: self.at,
            to: self.to.clone(),
            source: self.source,
            reason: self.set.revoke_reason.clone(),
            confirmed_by: self.confirmed_by,
        }
    }

    /// Applies the change to a record in memory (the in-memory store, and the
    /// answer built after a conditional write that succeeded).
    pub fn apply(&self, record: &mut ConsentRecord) {
        let effect = self.history_effect(record);
        record.status = self.to.clone();
        record.updated_at = self.at;
        record.milestones.overlay(&self.set);
        match &self.due {
            Due::Keep => {}
            Due::At(at) => record.due_at = Some(*at),
            Due::Clear => record.due_at = None,
        }
        match effect {
            HistoryEffect::Append => record.history.push(self.entry()),
            HistoryEffect::Skip => {}
            HistoryEffect::ReplaceLast => {
                record.history.truncate(HISTORY_LIMIT - 1);
                record.history.push(self.entry());
            }
        }
    }

    /// Confirming changes no status, yet it is an event worth keeping.
    pub fn always_recorded(&self) -> bool {
        matches!(self.source, ChangeSource::Confirm | ChangeSource::Reconfirm)
    }

    /// What this change does to `current`'s history. Computed *before* the
    /// change is applied (the conditional writes encode the same rule).
    pub fn history_effect(&self, current: &ConsentRecord) -> HistoryEffect {
        if current.status == self.to && !self.always_recorded() {
            HistoryEffect::Skip
        } else if current.history.len() >= HISTORY_LIMIT {
            HistoryEffect::ReplaceLast
        } else {
            HistoryEffect::Append
        }
    }
}

/// Most entries a consent's history holds, so the item stays far below
/// DynamoDB's 400 KB: the first ones are kept, and past the limit the newest
/// change takes the last place. A change to the status the record already has
/// (a retried revoke) adds none.
pub const HISTORY_LIMIT: usize = 32;

/// What a transition does to the record's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryEffect {
    Append,
    /// The status does not change: nothing to tell.
    Skip,
    /// The history is full: the newest change takes the last place.
    ReplaceLast,
}

/// Most consents one page holds: with bounded histories a page stays far
/// below 1 MB.
pub const LIST_LIMIT: usize = 100;

/// One page of a user's consents, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    /// The `list_key` of the last consent of the page before.
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub records: Vec<ConsentRecord>,
    /// Where the next page starts, when there may be one.
    pub next: Option<String>,
}

impl ConsentRecord {
    /// Its place in its owner's list: creation time, then id.
    pub fn list_key(&self) -> String {
        format!("{}#{}", self.created_at, self.consent_id)
    }
}

/// What must hold, besides the consent's status, for a transition to apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Guard<'a> {
    /// The consent belongs to this user.
    pub owner: Option<&'a str>,
    /// The consent has not been confirmed.
    pub unconfirmed: bool,
    /// `(hash, now)`: its confirmation code hashes to `hash` and is still
    /// valid at `now` (implies `unconfirmed`).
    pub code: Option<(&'a str, Timestamp)>,
    /// The owner has confirmed the consent.
    pub confirmed: bool,
    /// Its `due_at` is still this (the reconciler's claim on it).
    pub due_at: Option<Timestamp>,
}

impl Guard<'_> {
    /// Whether `record` (already known to be in an expected status) passes.
    pub fn admits(&self, record: &ConsentRecord) -> bool {
        let owner = self.owner.is_none_or(|owner| record.owner == owner);
        let unconfirmed =
            !(self.unconfirmed || self.code.is_some()) || record.milestones.confirmed_at.is_none();
        let code = self.code.is_none_or(|(hash, now)| {
            record.milestones.confirm_code_hash.as_deref() == Some(hash)
                && record.milestones.confirm_by.is_some_and(|by| by > now)
        });
        let confirmed = !self.confirmed || record.milestones.confirmed_at.is_some();
        let due = self.due_at.is_none_or(|due| record.due_at == Some(due));
        owner && unconfirmed && code && confirmed && due
    }
}

/// Who may create the user's Finexer customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerClaim {
    /// The user already has one.
    Existing(String),
    /// This caller holds the lease and must create it, then save or release.
    Claimed,
    /// Another request holds the lease right now.
    Busy,
}

/// The answer to asking for a place among the owner's pending links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingPlace {
    /// The place is the link's until its state lapses or it leaves pending.
    Taken,
    /// The owner already has the most pending links allowed; the first of
    /// them lapses at `frees_at` (Unix seconds).
    Full { frees_at: i64 },
}

/// A pending link, as it counts against its owner's cap: the `jti` of its
/// state and when that state lapses (Unix seconds). Past it the link can no
/// longer be finished, so it stops counting without anyone removing it: a
/// release lost to a crash costs the owner a place for one state lifetime
/// at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLink<'a> {
    pub owner: &'a str,
    pub state_id: &'a str,
    pub expires_at: i64,
}

impl ConsentRecord {
    /// Whether the record's last change took it out of `new`/`pending` (its
    /// place among its owner's pending links is then free).
    pub fn left_pending(&self) -> bool {
        let awaiting = |s: &ConsentStatus| crate::consent::AWAITING_OUTCOME.contains(s);
        let previous = self
            .history
            .len()
            .checked_sub(2)
            .map(|i| &self.history[i].to);
        !awaiting(&self.status) && previous.is_some_and(awaiting)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumeOutcome {
    /// The state was consumed and the consent changed, atomically.
    Applied,
    /// The state is unknown, used, expired or bound to another consent.
    StateUnusable,
    /// The state is fine but the consent is no longer in an expected status.
    ConsentChanged,
}

#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Opens the store's connection ahead of the first request (the start-up
    /// prefetch, [`crate::prefetch`]); nothing to do for an in-memory store.
    async fn warm_up(&self) -> Result<()> {
        Ok(())
    }

    /// The user's Finexer customer id, if one was saved.
    async fn customer(&self, owner: &str) -> Result<Option<String>>;

    /// Takes a lease on creating the user's customer, so concurrent first
    /// calls create one customer, not two. A lease older than `lease_seconds`
    /// (a crashed creator) may be taken over.
    async fn claim_customer(
        &self,
        owner: &str,
        now: i64,
        lease_seconds: i64,
    ) -> Result<CustomerClaim>;

    /// Saves the customer created under a lease and returns the id now on
    /// record (another's, if a takeover raced us).
    async fn save_customer(&self, owner: &str, customer_id: &str) -> Result<String>;

    /// Gives up a lease after a failed create, so the next call need not wait.
    async fn release_customer_claim(&self, owner: &str) -> Result<()>;

    /// Takes a place for `link` among its owner's pending links if fewer
    /// than `max` are live at `now` (Unix seconds). Concurrent calls never
    /// take more than `max` places between them.
    async fn take_pending_place(
        &self,
        link: PendingLink<'_>,
        now: i64,
        max: usize,
    ) -> Result<PendingPlace>;

    /// Frees the place of the link whose state is `state_id` (it left
    /// pending, or was never created). Freeing a free place does nothing.
    /// [`ConsentStore::transition`] frees it itself when its change takes a
    /// record out of `new`/`pending`.
    async fn free_pending_place(&self, owner: &str, state_id: &str) -> Result<()>;

    /// Writes a new consent and its state together, or neither.
    async fn insert_consent(&self, consent: &ConsentRecord, state: &StateRecord) -> Result<()>;

    async fn consent(&self, consent_id: &str) -> Result<Option<ConsentRecord>>;

    /// One page of the owner's consents, newest first.
    async fn consents_of(&self, owner: &str, page: &Page) -> Result<Listing>;

    /// Consumes a state bound to `consent_id` and applies `change` if the
    /// consent's status is one of `from`, atomically: both or neither.
    async fn consume_state(
        &self,
        state_id: &str,
        consent_id: &str,
        now: i64,
        from: &[ConsentStatus],
        change: &Transition,
    ) -> Result<ConsumeOutcome>;

    /// Applies `change` if the consent exists, its status is one of `from` and
    /// `guard` holds, atomically. Returns the updated record, or None when the
    /// condition did not hold.
    async fn transition(
        &self,
        consent_id: &str,
        guard: Guard<'_>,
        from: &[ConsentStatus],
        change: &Transition,
    ) -> Result<Option<ConsentRecord>>;

    /// One page of the records due for a look at `now`, earliest first.
    /// `after` is the `next` of the page before.
    async fn due(&self, now: Timestamp, limit: usize, after: Option<&DueCursor>)
    -> Result<DuePage>;

    /// Moves a record's `due_at` from `seen` to `to` (None: clears it) if it
    /// is still `seen`: the reconciler's claim on a record, and its release.
    /// Returns the record as it is after the move, or None when it had moved.
    async fn move_due(
        &self,
        consent_id: &str,
        seen: Timestamp,
        to: Option<Timestamp>,
    ) -> Result<Option<ConsentRecord>>;

    /// Records a webhook event's id until `expires_at` (Unix seconds); false
    /// when it was already recorded (a redelivery).
    async fn record_event(&self, event_id: &str, expires_at: i64) -> Result<bool>;

    /// Forgets an event whose handling failed, so that Finexer's redelivery
    /// is handled.
    async fn forget_event(&self, event_id: &str) -> Result<()>;

    /// Deletes a consent and the state issued with it (erasure).
    async fn delete_consent(&self, consent_id: &str, state_id: &str) -> Result<()>;

    /// Deletes the user's Finexer customer id and pending places (erasure).
    async fn delete_customer(&self, owner: &str) -> Result<()>;
}

/// Where a page of due records ends: the last one's due time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCursor {
    pub due_at: Timestamp,
    pub consent_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePage {
    /// `(consent id, due_at)` as the index read them; the record itself is
    /// read when claimed.
    pub records: Vec<(String, Timestamp)>,
    pub next: Option<DueCursor>,
}
