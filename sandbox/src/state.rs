//! What every handler shares.

use std::io;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crate::accounts::{BankAccount, accounts_for};
use crate::config::SandboxConfig;
use crate::faults::FaultInjector;
use crate::model::{Consent, ConsentStatus};
use crate::mutations::MutationSwitch;
use crate::request_log::RequestLog;
use crate::store::Store;
use crate::webhooks::{WebhookTarget, Webhooks};

pub struct Shared {
    pub api_key: String,
    /// Without a trailing slash.
    pub public_base_url: String,
    pub latency: Duration,
    pub accounts_delay: Duration,
    pub store: Arc<Store>,
    pub faults: FaultInjector,
    pub requests: RequestLog,
    /// Off unless a test sets it (`/_sandbox/mutations`).
    pub mutations: MutationSwitch,
    /// `None` without a webhook URL.
    pub webhooks: Option<Arc<Webhooks>>,
}

#[derive(Clone)]
pub struct SandboxState(Arc<Shared>);

impl Deref for SandboxState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl SandboxState {
    /// Checks the configuration and, when webhooks are configured, starts their
    /// delivery task (so this must run inside a Tokio runtime).
    pub fn new(config: &SandboxConfig, public_base_url: &str) -> io::Result<Self> {
        let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        if config.api_key.is_empty() {
            return Err(invalid("the API key must not be empty".to_owned()));
        }
        let public_base_url = public_base_url.trim_end_matches('/').to_owned();
        url::Url::parse(&public_base_url)
            .map_err(|why| invalid(format!("public base URL {public_base_url:?}: {why}")))?;
        for rule in &config.faults {
            rule.validate()
                .map_err(|why| invalid(format!("fault rule: {why}")))?;
        }
        let accounts_delay = Duration::from_millis(config.accounts_delay_ms);

        let (store, webhooks) = match &config.webhook_url {
            None => (Arc::new(Store::new(None)), None),
            Some(url) => {
                let target = WebhookTarget::new(url, &config.webhook_secret).map_err(invalid)?;
                tokio::runtime::Handle::try_current()
                    .map_err(|_| invalid("webhooks need a running Tokio runtime".to_owned()))?;
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                let store = Arc::new(Store::new(Some(sender)));
                let webhooks =
                    Webhooks::start(target, Arc::downgrade(&store), accounts_delay, receiver)
                        .map_err(invalid)?;
                (store, Some(webhooks))
            }
        };

        Ok(Self(Arc::new(Shared {
            api_key: config.api_key.clone(),
            public_base_url,
            latency: Duration::from_millis(config.latency_ms),
            accounts_delay,
            store,
            faults: FaultInjector::new(config.faults.clone()),
            requests: RequestLog::default(),
            mutations: MutationSwitch::default(),
            webhooks,
        })))
    }

    /// Accounts of a consent as a client can see them: only while it is
    /// authorized, and only once `accounts_delay` has passed since authorization.
    pub fn visible_accounts(&self, consent: &Consent) -> Vec<BankAccount> {
        let visible = consent.status == ConsentStatus::Authorized
            && consent
                .authorized_instant
                .is_some_and(|at| at.elapsed() >= self.accounts_delay);
        if !visible {
            return Vec::new();
        }
        let customer_name = consent
            .customer
            .as_deref()
            .and_then(|id| self.store.customer(id))
            .map(|customer| customer.name);
        accounts_for(consent, customer_name.as_deref())
    }
}
