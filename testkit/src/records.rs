//! Records to seed a store with, as the handlers would have written them.

use shared::store::{ChangeSource, ConsentRecord, ConsentStatus, StatusChange};

/// Who and what a seeded consent is.
pub struct Seed<'a> {
    pub consent_id: &'a str,
    pub owner: &'a str,
    pub customer_id: &'a str,
    pub state_id: &'a str,
    pub return_to: &'a str,
    pub status: ConsentStatus,
    /// Created, updated and (when authorized) authorized at this time.
    pub at: &'a str,
}

/// A consent record with one history entry, at `status` from its creation;
/// `authorized_at` is set for an authorized one. Adjust the other fields on
/// the result.
pub fn consent(seed: Seed<'_>) -> ConsentRecord {
    let at = seed.at.to_owned();
    ConsentRecord {
        consent_id: seed.consent_id.to_owned(),
        owner: seed.owner.to_owned(),
        customer_id: seed.customer_id.to_owned(),
        status: seed.status.clone(),
        provider: None,
        return_to: seed.return_to.to_owned(),
        state_id: seed.state_id.to_owned(),
        created_at: at.clone(),
        updated_at: at.clone(),
        authorized_at: (seed.status == ConsentStatus::Authorized).then(|| at.clone()),
        revoke_requested_at: None,
        revoked_at: None,
        expires_at: None,
        confirm_code_hash: None,
        confirm_by: None,
        confirmed_at: None,
        revoke_reason: None,
        renewed_at: None,
        expiry_reminder_at: None,
        due_at: None,
        history: vec![StatusChange {
            at,
            to: seed.status,
            source: ChangeSource::Create,
            reason: None,
        }],
    }
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
            at: "2026-11-25T10:00:00Z",
        });
        assert_eq!(
            record.authorized_at.as_deref(),
            Some("2026-11-25T10:00:00Z")
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
            at: "2026-11-25T10:00:00Z",
        });
        assert_eq!(pending.authorized_at, None);
        assert_eq!(pending.status, ConsentStatus::Pending);
    }
}
