//! A consent as we keep it: its status, which status may follow which, and
//! the view the API gives its owner. Finexer's wire format maps onto the
//! status in `crate::finexer`; the store keeps records in `crate::store`.

use serde::{Deserialize, Serialize};

use crate::store::{ChangeSource, ConfirmedBy, ConsentRecord, Milestones};
use crate::timestamp::Timestamp;

/// A consent's status: Finexer's names, and our `revoke_pending`. Unknown
/// values are kept, never an error that loses the record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ConsentStatus {
    New,
    Pending,
    Authorized,
    Failed,
    Expired,
    Canceled,
    /// Ours, not Finexer's: a revocation was asked for and is not yet confirmed.
    RevokePending,
    Other(String),
}

impl ConsentStatus {
    pub fn as_str(&self) -> &str {
        match self {
            ConsentStatus::New => "new",
            ConsentStatus::Pending => "pending",
            ConsentStatus::Authorized => "authorized",
            ConsentStatus::Failed => "failed",
            ConsentStatus::Expired => "expired",
            ConsentStatus::Canceled => "canceled",
            ConsentStatus::RevokePending => "revoke_pending",
            ConsentStatus::Other(s) => s,
        }
    }

    /// Nothing Finexer says can change it any more (only a revocation the
    /// owner or an erasure asks for, see [`REVOCABLE`]).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ConsentStatus::Canceled | ConsentStatus::Failed | ConsentStatus::Expired
        )
    }

    /// The user finished at the consent page, one way or the other.
    pub fn is_outcome(&self) -> bool {
        matches!(
            self,
            ConsentStatus::Authorized
                | ConsentStatus::Canceled
                | ConsentStatus::Failed
                | ConsentStatus::Expired
        )
    }

    /// Whether a record in this status may move to `to`: the one map of
    /// the consent's life. Every write names the statuses it may start from
    /// (the store applies it only from those); each such list stays within
    /// this map (the tests below check the named ones).
    pub fn may_follow(&self, to: &ConsentStatus) -> bool {
        use ConsentStatus::*;
        match (self, to) {
            // The user's outcome at the bank, by the callback or Finexer's word.
            (New | Pending, Authorized | Failed | Expired | Canceled) => true,
            // Confirmed, re-confirmed, renewed: still authorized.
            (Authorized, Authorized) => true,
            // Lapsed, or revoked at the bank.
            (Authorized, Expired | Canceled) => true,
            // A revocation asked for, by the owner, an erasure or the system.
            (from, RevokePending) => REVOCABLE.contains(from),
            // Finexer confirmed the revocation.
            (RevokePending, Canceled) => true,
            _ => false,
        }
    }
}

/// Every status a revocation may start from (all but `canceled` and
/// statuses we do not know).
pub const REVOCABLE: [ConsentStatus; 6] = [
    ConsentStatus::New,
    ConsentStatus::Pending,
    ConsentStatus::Authorized,
    ConsentStatus::Failed,
    ConsentStatus::Expired,
    ConsentStatus::RevokePending,
];

/// Before the user's outcome at the bank: what an outcome may follow.
pub const AWAITING_OUTCOME: [ConsentStatus; 2] = [ConsentStatus::New, ConsentStatus::Pending];

/// What may lapse (`expired`).
pub const MAY_EXPIRE: [ConsentStatus; 3] = [
    ConsentStatus::New,
    ConsentStatus::Pending,
    ConsentStatus::Authorized,
];

/// Where `canceled` means revoked (at the bank, or our revocation done),
/// not denied at the consent page.
pub const REVOKED_FROM: [ConsentStatus; 2] =
    [ConsentStatus::Authorized, ConsentStatus::RevokePending];

impl From<String> for ConsentStatus {
    fn from(value: String) -> Self {
        match value.as_str() {
            "new" => ConsentStatus::New,
            "pending" => ConsentStatus::Pending,
            "authorized" => ConsentStatus::Authorized,
            "failed" => ConsentStatus::Failed,
            "expired" => ConsentStatus::Expired,
            // Finexer spells it the American way; accept the British one too.
            "canceled" | "cancelled" => ConsentStatus::Canceled,
            "revoke_pending" => ConsentStatus::RevokePending,
            _ => ConsentStatus::Other(value),
        }
    }
}

impl From<ConsentStatus> for String {
    fn from(value: ConsentStatus) -> Self {
        value.as_str().to_owned()
    }
}

impl std::fmt::Display for ConsentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a re-confirmation lasts under the UK's rules.
pub const RECONFIRM_EVERY: time::Duration = time::Duration::days(90);

/// Until when the consent stands without a re-confirmation: 90 days after
/// the last one, or after the owner confirmed it. None unless it is live.
pub fn reconfirm_by(record: &ConsentRecord) -> Option<Timestamp> {
    if !record.is_confirmed() {
        return None;
    }
    let since = record
        .milestones
        .renewed_at
        .or(record.milestones.authorized_at)?;
    Some(since + RECONFIRM_EVERY)
}

/// A consent as the API shows it to its owner (no internal binding fields).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsentView {
    pub consent_id: String,
    pub status: ConsentStatus,
    pub provider: Option<String>,
    /// The bank's display name, when Finexer gave one ("Connect HSBC?").
    pub bank_name: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub authorized_at: Option<Timestamp>,
    pub revoke_requested_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    /// When the user last re-confirmed it (the UK 90-day rule).
    pub renewed_at: Option<Timestamp>,
    /// Until when an authorized consent stands without the user's
    /// re-confirmation (`POST /consents/{id}/reconfirm`).
    pub reconfirm_by: Option<Timestamp>,
    /// When Finexer reminded the user that it expires soon.
    pub expiry_reminder_at: Option<Timestamp>,
    /// Until when the owner may confirm an authorized consent.
    pub confirm_by: Option<Timestamp>,
    /// When the owner confirmed it; its accounts are served only after.
    pub confirmed_at: Option<Timestamp>,
    /// Why it was revoked, when the owner did not ask for it.
    pub revoke_reason: Option<String>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub from: Option<ConsentStatus>,
    pub to: ConsentStatus,
    pub source: ChangeSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How the owner proved a confirmation (`source: confirm` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<ConfirmedBy>,
}

impl From<ConsentRecord> for ConsentView {
    fn from(record: ConsentRecord) -> Self {
        let reconfirm_by = reconfirm_by(&record);
        let mut previous = None;
        let history = record
            .history
            .into_iter()
            .map(|change| {
                let from = previous.replace(change.to.clone());
                HistoryEntry {
                    at: change.at,
                    from,
                    to: change.to,
                    source: change.source,
                    reason: change.reason,
                    confirmed_by: change.confirmed_by,
                }
            })
            .collect();
        // Every milestone but the confirmation code's hash, which is ours.
        let Milestones {
            provider,
            bank_name,
            authorized_at,
            revoke_requested_at,
            revoked_at,
            expires_at,
            confirm_code_hash: _,
            confirm_by,
            confirmed_at,
            revoke_reason,
            renewed_at,
            expiry_reminder_at,
        } = record.milestones;
        ConsentView {
            consent_id: record.consent_id,
            status: record.status,
            provider,
            bank_name,
            created_at: record.created_at,
            updated_at: record.updated_at,
            authorized_at,
            revoke_requested_at,
            revoked_at,
            expires_at,
            renewed_at,
            reconfirm_by,
            expiry_reminder_at,
            confirm_by,
            confirmed_at,
            revoke_reason,
            history,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConsentStatus::{self, *};
    use super::*;

    fn all() -> Vec<ConsentStatus> {
        vec![
            New,
            Pending,
            Authorized,
            Failed,
            Expired,
            Canceled,
            RevokePending,
            Other("paused".into()),
        ]
    }

    /// Each named list of starting statuses stays within the map, for the
    /// statuses the code moves to from it.
    #[test]
    fn the_named_starting_points_stay_within_the_map() {
        let uses: [(&[ConsentStatus], &[ConsentStatus]); 4] = [
            (&AWAITING_OUTCOME, &[Authorized, Failed, Canceled, Expired]),
            (&MAY_EXPIRE, &[Expired]),
            (&REVOKED_FROM, &[Canceled]),
            (&REVOCABLE, &[RevokePending]),
        ];
        for (from, targets) in uses {
            for f in from {
                for to in targets {
                    assert!(f.may_follow(to), "{f} -> {to}");
                }
            }
        }
    }

    #[test]
    fn a_record_never_moves_backwards() {
        for to in all() {
            assert!(!Canceled.may_follow(&to), "canceled -> {to}");
            assert!(!Authorized.may_follow(&New) && !Authorized.may_follow(&Pending));
            assert!(!Other("paused".into()).may_follow(&to), "unknown -> {to}");
        }
        for from in [Failed, Expired] {
            let onward: Vec<_> = all().into_iter().filter(|to| from.may_follow(to)).collect();
            assert_eq!(onward, [RevokePending], "{from}");
        }
        assert!(!RevokePending.may_follow(&Authorized));
        assert!(!Pending.may_follow(&New));
    }

    #[test]
    fn statuses_read_and_print_as_finexer_names_them() {
        for status in all() {
            assert_eq!(ConsentStatus::from(status.to_string()), status);
        }
        assert_eq!(ConsentStatus::from("cancelled".to_owned()), Canceled);
        assert!(Expired.is_final() && !RevokePending.is_final());
        assert!(Authorized.is_outcome() && !Pending.is_outcome());
    }
}
