//! Bank accounts, generated from the consent id alone (a seeded hash), so the
//! same consent always shows the same accounts and nothing has to be stored.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::ids::derived_id;
use crate::model::{Consent, Metadata};
use crate::providers::{SANDBOX_BANKS, SandboxBank, find_bank};

const HOLDER_NAMES: &[&str] = &[
    "Alex Morgan",
    "Sam Patel",
    "Jordan Hughes",
    "Priya Shah",
    "Chris O'Neill",
    "Taylor Evans",
];

#[derive(Debug, Clone, Serialize)]
pub struct Identification {
    pub sort_code: Option<String>,
    pub account_number: Option<String>,
    pub iban: Option<String>,
    /// Masked card number, only for card accounts.
    pub pan: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BankAccount {
    pub id: String,
    pub object: &'static str,
    pub created_at: Timestamp,
    pub holder_name: String,
    pub nickname: String,
    pub currency: &'static str,
    pub identification: Identification,
    #[serde(rename = "type")]
    pub account_type: &'static str,
    pub class: &'static str,
    pub provider: String,
    pub consent: String,
    pub customer: Option<String>,
    pub fingerprint: String,
    pub metadata: Metadata,
}

/// A deterministic stream of numbers: SHA-256 of the seed and a counter.
struct SeededDraw {
    seed: String,
    counter: u64,
}

impl SeededDraw {
    fn new(seed: impl Into<String>) -> Self {
        Self {
            seed: seed.into(),
            counter: 0,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(self.seed.as_bytes());
        hasher.update(self.counter.to_le_bytes());
        self.counter += 1;
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }

    /// Uniform enough in `0..bound` for made-up bank data.
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    fn digits(&mut self, count: usize) -> String {
        (0..count)
            .map(|_| char::from(b'0' + u8::try_from(self.below(10)).unwrap_or(0)))
            .collect()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let index = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        &items[index]
    }
}

/// The accounts an authorized consent gives access to: one to three of them.
pub fn accounts_for(consent: &Consent, customer_name: Option<&str>) -> Vec<BankAccount> {
    let Some(authed_at) = consent.authed_at else {
        return Vec::new();
    };
    let bank = consent
        .provider
        .as_deref()
        .and_then(find_bank)
        .unwrap_or(&SANDBOX_BANKS[0]);
    let mut draw = SeededDraw::new(format!("accounts:{}", consent.id));
    let count = 1 + draw.below(3);
    let holder_name = customer_name
        .map(str::to_owned)
        .unwrap_or_else(|| (*draw.pick(HOLDER_NAMES)).to_owned());
    (0..count)
        .map(|index| {
            // The first account is always a current account, the one most flows look for.
            let kind = if index == 0 {
                AccountKind::Current
            } else {
                *draw.pick(&[
                    AccountKind::Current,
                    AccountKind::Savings,
                    AccountKind::CreditCard,
                ])
            };
            let class = if draw.below(5) == 0 {
                "business"
            } else {
                "personal"
            };
            let identification = kind.identification(bank, &mut draw);
            let fingerprint_source = format!(
                "{}:{}:{}",
                bank.id,
                identification.account_number.as_deref().unwrap_or_default(),
                identification.pan.as_deref().unwrap_or_default()
            );
            BankAccount {
                id: derived_id("ba", &format!("{}:{index}", consent.id)),
                object: "bank_account",
                created_at: authed_at,
                holder_name: holder_name.clone(),
                nickname: kind.nickname(class).to_owned(),
                currency: "GBP",
                identification,
                account_type: kind.as_str(),
                class,
                provider: bank.id.to_owned(),
                consent: consent.id.clone(),
                customer: consent.customer.clone(),
                fingerprint: hex::encode(&Sha256::digest(fingerprint_source.as_bytes())[..8]),
                metadata: Metadata::new(),
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum AccountKind {
    Current,
    Savings,
    CreditCard,
}

impl AccountKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Savings => "savings",
            Self::CreditCard => "credit_card",
        }
    }

    fn nickname(self, class: &str) -> &'static str {
        match (self, class) {
            (Self::Current, "business") => "Business Current Account",
            (Self::Current, _) => "Current Account",
            (Self::Savings, _) => "Everyday Saver",
            (Self::CreditCard, _) => "Credit Card",
        }
    }

    fn identification(self, bank: &SandboxBank, draw: &mut SeededDraw) -> Identification {
        if let Self::CreditCard = self {
            return Identification {
                sort_code: None,
                account_number: None,
                iban: None,
                pan: Some(format!("5355********{}", draw.digits(4))),
            };
        }
        let sort_code = format!("{}{}", bank.sort_code_prefix, draw.digits(4));
        let account_number = draw.digits(8);
        Identification {
            iban: Some(uk_iban(bank.iban_bank_code, &sort_code, &account_number)),
            sort_code: Some(sort_code),
            account_number: Some(account_number),
            pan: None,
        }
    }
}

/// A UK IBAN with valid ISO 13616 check digits, so clients that validate IBANs accept it.
fn uk_iban(bank_code: &str, sort_code: &str, account_number: &str) -> String {
    let bban = format!("{bank_code}{sort_code}{account_number}");
    let rearranged = format!("{bban}GB00");
    let remainder = rearranged.chars().fold(0u32, |remainder, c| {
        let value = c.to_digit(36).unwrap_or(0);
        let width = if value >= 10 { 100 } else { 10 };
        (remainder * width + value) % 97
    });
    format!("GB{:02}{bban}", 98 - remainder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iban_check_digits_match_a_published_example() {
        // The UK example IBAN from the IBAN registry.
        assert_eq!(
            uk_iban("WEST", "123456", "98765432"),
            "GB82WEST12345698765432"
        );
    }

    #[test]
    fn draws_repeat_for_the_same_seed() {
        let first: Vec<u64> = {
            let mut draw = SeededDraw::new("seed");
            (0..5).map(|_| draw.below(1000)).collect()
        };
        let mut draw = SeededDraw::new("seed");
        let second: Vec<u64> = (0..5).map(|_| draw.below(1000)).collect();
        assert_eq!(first, second);
    }
}
