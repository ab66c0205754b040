//! Records to seed a store with, as the handlers would have written them.

use shared::Timestamp;
use shared::consent::ConsentStatus;
use shared::store::ConsentRecord;

/// Who and what a seeded consent is (`at`: created, updated and, when
/// authorized, authorized at this time).
pub use shared::store::NewRecord as Seed;

/// A consent record with one history entry, at `status` from its creation;
/// `authorized_at` is set for an authorized one. Adjust the other fields on
/// the result.
pub fn consent(seed: Seed<'_>) -> ConsentRecord {
    let authorized = seed.status == ConsentStatus::Authorized;
    let mut record = ConsentRecord::created(seed);
    if authorized {
        record.milestones.authorized_at = Some(record.created_at);
    }
    record
}

/// A time written as text (RFC 3339), for seeds and expectations.
pub fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).expect("an RFC 3339 time")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authorized_seed_is_authorized_at_its_time_with_one_history_entry() {
        let record = consent(Seed {
            consent_id: "bc_1",
            owner: "u1",
            customer_id: "cus_1",
            state_id: "jti-1",
            return_to: "https://app.example.com/return",
            status: ConsentStatus::Authorized,
            at: at("2026-11-25T10:00:00Z"),
        });
        assert_eq!(
            record.milestones.authorized_at,
            Some(at("2026-11-25T10:00:00Z"))
        );
        assert_eq!(record.history.len(), 1);
        assert_eq!(record.history[0].to, ConsentStatus::Authorized);
        let pending = consent(Seed {
            consent_id: "bc_2",
            owner: "u1",
            customer_id: "cus_1",
            state_id: "jti-2",
            return_to: "https://app.example.com/return",
            status: ConsentStatus::Pending,
            at: at("2026-11-25T10:00:00Z"),
        });
        assert_eq!(pending.milestones.authorized_at, None);
        assert_eq!(pending.status, ConsentStatus::Pending);
    }
}
