//! Object identifiers in Finexer's style: a type prefix and 16 alphanumerics.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

const ID_BODY_LEN: usize = 16;
const ALPHANUMERICS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A fresh random id, e.g. `random_id("bc")` → `bc_4fQ9...`.
pub fn random_id(prefix: &str) -> String {
    let body: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(ID_BODY_LEN)
        .map(char::from)
        .collect();
    format!("{prefix}_{body}")
}

/// An id that is always the same for the same seed, so generated objects
/// (accounts) keep their ids across calls and restarts.
pub fn derived_id(prefix: &str, seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let body: String = digest
        .iter()
        .take(ID_BODY_LEN)
        .map(|byte| char::from(ALPHANUMERICS[usize::from(*byte) % ALPHANUMERICS.len()]))
        .collect();
    format!("{prefix}_{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_have_prefix_and_body() {
        let id = random_id("bc");
        assert!(id.starts_with("bc_"));
        assert_eq!(id.len(), 3 + ID_BODY_LEN);
        assert!(id[3..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(id, random_id("bc"));
    }

    #[test]
    fn derived_ids_are_stable() {
        assert_eq!(derived_id("ba", "x"), derived_id("ba", "x"));
        assert_ne!(derived_id("ba", "x"), derived_id("ba", "y"));
    }
}
