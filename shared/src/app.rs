//! The handlers' dependencies, built once per process.

use std::sync::Arc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::finexer::FinexerClient;
use crate::metrics::{Metrics, Sink};
use crate::secrets::{SecretSource, SecretsManagerSource};
use crate::store::ConsentStore;
use crate::store::dynamo::DynamoStore;

pub struct App {
    pub config: Config,
    pub store: Arc<dyn ConsentStore>,
    pub secrets: Arc<dyn SecretSource>,
    pub finexer: FinexerClient,
    pub known_customers: KnownCustomers,
    /// Banks' display names from Finexer's provider list, for a while.
    pub bank_names: BankNames,
    /// Where the invocations' metrics go (stdout, as EMF, unless replaced).
    pub metrics: Metrics,
}

/// Users' Finexer customer ids seen by this process. A saved customer id
/// never changes, so a warm container may skip the store read for it.
#[derive(Default)]
pub struct KnownCustomers(std::sync::Mutex<std::collections::HashMap<String, String>>);

/// Bound on remembered users, so memory stays flat in a long-lived container.
const KNOWN_CUSTOMERS_LIMIT: usize = 10_000;

impl KnownCustomers {
    pub fn get(&self, user: &str) -> Option<String> {
        self.0.lock().ok()?.get(user).cloned()
    }

    pub fn remember(&self, user: &str, customer_id: &str) {
        if let Ok(mut known) = self.0.lock() {
            if known.len() >= KNOWN_CUSTOMERS_LIMIT {
                known.clear();
            }
            known.insert(user.to_owned(), customer_id.to_owned());
        }
    }
}

/// Finexer's provider list as names by provider id, as this process last
/// read it: banks are renamed or added rarely, so a warm container asks
/// Finexer at most once per `BANK_NAMES_TTL`, not on every approval.
#[derive(Default)]
pub struct BankNames {
    cached: std::sync::Mutex<Option<(std::time::Instant, BankNameMap)>>,
    /// Held while the list is read, so that a request asking meanwhile (the
    /// start-up prefetch's read in flight) waits for that read.
    reading: tokio::sync::Mutex<()>,
}

pub type BankNameMap = Arc<std::collections::HashMap<String, String>>;

const BANK_NAMES_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

impl BankNames {
    /// The names read within the last hour, if any.
    fn fresh(&self) -> Option<BankNameMap> {
        let cached = self.cached.lock().ok()?;
        let (read_at, names) = cached.as_ref()?;
        (read_at.elapsed() < BANK_NAMES_TTL).then(|| names.clone())
    }

    /// The fresh names, or those `read` gives (then kept); one read at a time.
    pub async fn get_or_read<F>(&self, read: F) -> Result<BankNameMap>
    where
        F: std::future::Future<Output = Result<std::collections::HashMap<String, String>>>,
    {
        if let Some(names) = self.fresh() {
            return Ok(names);
        }
        let _one_read = self.reading.lock().await;
        if let Some(names) = self.fresh() {
            return Ok(names);
        }
        let names = Arc::new(read.await?);
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((std::time::Instant::now(), names.clone()));
        }
        Ok(names)
    }
}

impl App {
    pub fn new(
        config: Config,
        store: Arc<dyn ConsentStore>,
        secrets: Arc<dyn SecretSource>,
    ) -> Result<App> {
        let finexer = FinexerClient::new(
            config.finexer_base_url.clone(),
            config.finexer_timeout,
            secrets.clone(),
        )?;
        let metrics = Metrics::new(&config.metrics_namespace, Sink::stdout());
        Ok(App {
            config,
            store,
            secrets,
            finexer,
            known_customers: KnownCustomers::default(),
            bank_names: BankNames::default(),
            metrics,
        })
    }

    /// Sends the metrics to `sink` instead of stdout (tests).
    pub fn with_metrics_sink(mut self, sink: Sink) -> App {
        self.metrics = Metrics::new(&self.config.metrics_namespace, sink);
        self
    }

    /// Production wiring: configuration from the environment, DynamoDB and
    /// Secrets Manager through the AWS SDK's standard configuration (so
    /// `AWS_ENDPOINT_URL` points both at an emulator). Makes no network call:
    /// secrets are fetched on first use, or by the start-up prefetch
    /// ([`crate::prefetch`]) in the background.
    pub async fn from_env() -> Result<App> {
        let config = Config::from_env()?;
        let aws = crate::net::aws_config_loader(config.store_timeout)?
            .load()
            .await;
        if aws.region().is_none() {
            return Err(Error::Config(
                "AWS_REGION is not set (Lambda sets it; set it for a local run)".into(),
            ));
        }
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name);
        let secrets = SecretsManagerSource::new(
            aws_sdk_secretsmanager::Client::new(&aws),
            config.secret_ids.clone(),
            config.secrets_cache_ttl,
        );
        App::new(config, Arc::new(store), Arc::new(secrets))
    }
}
