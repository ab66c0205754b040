//! The objects the sandbox keeps, serialised exactly as Finexer's API shows them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

pub type Metadata = BTreeMap<String, String>;

#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub id: String,
    pub object: &'static str,
    pub created_at: Timestamp,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub currency: String,
    pub metadata: Metadata,
}

/// Finexer's consent statuses, with its American spelling of `canceled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentStatus {
    New,
    Pending,
    Authorized,
    Failed,
    Expired,
    Canceled,
}

impl ConsentStatus {
    pub const ALL: [Self; 6] = [
        Self::New,
        Self::Pending,
        Self::Authorized,
        Self::Failed,
        Self::Expired,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Pending => "pending",
            Self::Authorized => "authorized",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Failed, expired and canceled consents never change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Failed | Self::Expired | Self::Canceled)
    }
}

impl fmt::Display for ConsentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Accounts,
    Balance,
    Transactions,
}

impl Scope {
    pub const ALL: [Self; 3] = [Self::Accounts, Self::Balance, Self::Transactions];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::Balance => "balance",
            Self::Transactions => "transactions",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    /// How the consent page words the scope to the account holder.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Accounts => "Your account details (name, sort code, account number)",
            Self::Balance => "Your account balances",
            Self::Transactions => "Your transactions",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentRedirect {
    pub return_url: Option<String>,
    pub consent_url: String,
}

/// Deserializable so that clients of the admin API get it typed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Consent {
    pub id: String,
    /// Always `"consent"`.
    pub object: Cow<'static, str>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub renewed_at: Option<Timestamp>,
    pub provider: Option<String>,
    pub customer: Option<String>,
    pub consent_link: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub expiry_date: Option<Timestamp>,
    /// `YYYY-MM-DD`, as sent.
    pub retro_date: Option<String>,
    pub scopes: Vec<Scope>,
    pub authed_at: Option<Timestamp>,
    pub status: ConsentStatus,
    pub redirect: ConsentRedirect,
    pub metadata: Metadata,
    /// Set when the API chose the bank, so the consent page must not offer another.
    #[serde(skip)]
    pub provider_chosen_by_api: bool,
    /// When the consent was authorized on this process's clock, for `accounts_delay`.
    #[serde(skip)]
    pub authorized_instant: Option<Instant>,
}
