//! Start-up settings of a sandbox instance.

use std::net::{Ipv4Addr, SocketAddr};

use crate::faults::FaultRule;

pub const DEFAULT_API_KEY: &str = "sk_sandbox_test";

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The key clients send as the Basic auth user name (password empty).
    pub api_key: String,
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Base of the links handed out (`consent_url`, `logo_url`, paging links);
    /// `http://<bound address>` when `None`.
    pub public_base_url: Option<String>,
    /// Loopback URL receiving signed events on consent status changes.
    pub webhook_url: Option<String>,
    /// HMAC key for the `fx-signature` header; required with `webhook_url`.
    pub webhook_secret: String,
    /// Added before every API answer, for realistic timings.
    pub latency_ms: u64,
    /// Accounts of a freshly authorized consent stay hidden this long.
    pub accounts_delay_ms: u64,
    /// Fault rules active from the start (replaceable through `/_sandbox/faults`).
    pub faults: Vec<FaultRule>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            api_key: DEFAULT_API_KEY.to_owned(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            public_base_url: None,
            webhook_url: None,
            webhook_secret: String::new(),
            latency_ms: 0,
            accounts_delay_ms: 0,
            faults: Vec::new(),
        }
    }
}
