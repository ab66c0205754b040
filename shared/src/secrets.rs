//! Secrets (Finexer API key, state-signing keys) from AWS Secrets Manager,
//! fetched on first use and cached for a configured time, so a warm container
//! asks at most once per TTL and a cold start pays nothing until it needs them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::error::{Error, Result};

/// The secret's JSON:
/// `{"finexer_api_key": "...", "state_keys": [{"kid": "2026-11", "key": "..."}, ...]}`.
/// The first state key signs; every listed key verifies, so a key is rotated
/// by putting a new one first and dropping the old one after a state lifetime.
/// A top-level `state_key` (kid `state_key_id`) counts as the last key: it is
/// the one CloudFormation generates at the first deploy, since
/// `GenerateSecretString` can only add a top-level string.
#[derive(Deserialize)]
#[serde(from = "StoredSecret")]
pub struct AppSecrets {
    pub finexer_api_key: SecretString,
    pub state_keys: Vec<SigningKey>,
    /// Finexer's webhook signing secrets, newest first; any one verifies, so
    /// a secret is rotated by adding the new one before Finexer switches.
    pub webhook_secrets: Vec<SecretString>,
}

#[derive(Deserialize)]
pub struct SigningKey {
    pub kid: String,
    pub key: SecretString,
}

/// The secret as stored, before the generated key joins the list.
#[derive(Deserialize)]
struct StoredSecret {
    finexer_api_key: SecretString,
    #[serde(default)]
    state_keys: Vec<SigningKey>,
    state_key: Option<SecretString>,
    state_key_id: Option<String>,
    #[serde(default)]
    webhook_secrets: Vec<SecretString>,
}

impl From<StoredSecret> for AppSecrets {
    fn from(stored: StoredSecret) -> Self {
        let mut state_keys = stored.state_keys;
        if let Some(key) = stored.state_key {
            state_keys.push(SigningKey {
                kid: stored.state_key_id.unwrap_or_else(|| "generated".into()),
                key,
            });
        }
        AppSecrets {
            finexer_api_key: stored.finexer_api_key,
            state_keys,
            webhook_secrets: stored.webhook_secrets,
        }
    }
}

/// Shortest signing key accepted: HS256 wants at least its output size.
pub const MIN_KEY_BYTES: usize = 32;

impl AppSecrets {
    pub fn parse(json: &str) -> Result<Self> {
        // serde's message may quote the offending value, which could be key
        // material: report only what kind of error and where.
        let secrets: AppSecrets = serde_json::from_str(json).map_err(|e| {
            Error::SecretInvalid(format!(
                "secret is not valid JSON or has the wrong shape ({:?} at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        secrets.validate()?;
        Ok(secrets)
    }

    fn validate(&self) -> Result<()> {
        if self.finexer_api_key.expose_secret().trim().is_empty() {
            return Err(Error::SecretInvalid("finexer_api_key is empty".into()));
        }
        if self.state_keys.is_empty() {
            return Err(Error::SecretInvalid(
                "no state key (state_keys is empty and there is no state_key)".into(),
            ));
        }
        if let Some(i) = self
            .webhook_secrets
            .iter()
            .position(|secret| secret.expose_secret().trim().is_empty())
        {
            return Err(Error::SecretInvalid(format!(
                "webhook_secrets[{i}] is empty"
            )));
        }
        for (i, key) in self.state_keys.iter().enumerate() {
            if !crate::state::is_key_id(&key.kid) {
                return Err(Error::SecretInvalid(format!(
                    "state_keys[{i}].kid must be 1 to {} of A-Z a-z 0-9 . _ : -",
                    crate::state::MAX_KEY_ID_LEN
                )));
            }
            if key.key.expose_secret().len() < MIN_KEY_BYTES {
                return Err(Error::SecretInvalid(format!(
                    "state_keys[{i}].key must be at least {MIN_KEY_BYTES} bytes"
                )));
            }
            if self.state_keys[..i].iter().any(|k| k.kid == key.kid) {
                return Err(Error::SecretInvalid(format!(
                    "state_keys[{i}].kid is listed twice"
                )));
            }
        }
        Ok(())
    }

    /// The key new state tokens are signed with.
    pub fn signing_key(&self) -> &SigningKey {
        &self.state_keys[0]
    }

    pub fn verifying_key(&self, kid: &str) -> Option<&SigningKey> {
        self.state_keys.iter().find(|k| k.kid == kid)
    }
}

#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn secrets(&self) -> Result<Arc<AppSecrets>>;

    /// Fetches anew because a token names a key the cached secrets lack (a
    /// key added moments ago). None when the source cannot or, having just
    /// done so, will not fetch again yet.
    async fn refetch_for_unknown_key(&self) -> Result<Option<Arc<AppSecrets>>> {
        Ok(None)
    }
}

/// Fixed secrets, for tests, benchmarks and tools (feature `test-util`).
#[cfg(any(test, feature = "test-util"))]
pub struct StaticSecrets(pub Arc<AppSecrets>);

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl SecretSource for StaticSecrets {
    async fn secrets(&self) -> Result<Arc<AppSecrets>> {
        Ok(self.0.clone())
    }
}

pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    // A mutex rather than a read-write lock: concurrent first requests wait for
    // one fetch instead of all fetching.
    cached: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// The last good secrets and when they were fetched.
    good: Option<(Instant, Arc<AppSecrets>)>,
    /// No refresh is tried before this, after one failed (stale serving).
    next_try: Option<Instant>,
    /// The last refetch for an unknown key.
    last_refetch: Option<Instant>,
}

/// An unknown key triggers at most one refetch per process in this time, so
/// forged `kid`s cannot turn into a Secrets Manager flood.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How long past its TTL a good value is served while Secrets Manager fails.
const STALE_LIMIT: Duration = Duration::from_secs(3600);
/// How often a refresh is retried meanwhile.
const STALE_RETRY: Duration = Duration::from_secs(30);

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: String, ttl: Duration) -> Self {
        Self {
            client,
            secret_id,
            ttl,
            cached: Mutex::new(Cache::default()),
        }
    }

    async fn fetch(&self) -> Result<AppSecrets> {
        crate::metrics::count(crate::metrics::SECRETS_REFRESH, &[]);
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| crate::error::from_aws("GetSecretValue", &e, Error::SecretsUnavailable))?;
        let json = output
            .secret_string()
            .ok_or_else(|| Error::SecretInvalid("secret has no string value".into()))?;
        AppSecrets::parse(json)
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn secrets(&self) -> Result<Arc<AppSecrets>> {
        let mut cache = self.cached.lock().await;
        let stale = match &cache.good {
            Some((fetched_at, secrets)) if fetched_at.elapsed() < self.ttl => {
                return Ok(secrets.clone());
            }
            Some((fetched_at, secrets)) if fetched_at.elapsed() < self.ttl + STALE_LIMIT => {
                Some(secrets.clone())
            }
            _ => None,
        };
        if let Some(stale) = &stale
            && cache.next_try.is_some_and(|at| Instant::now() < at)
        {
            crate::metrics::count(crate::metrics::SECRETS_STALE, &[]);
            return Ok(stale.clone());
        }
        match self.fetch().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                cache.good = Some((Instant::now(), fresh.clone()));
                cache.next_try = None;
                Ok(fresh)
            }
            // A blip must not fail requests that a value fetched a moment
            // ago would serve: keep using it for a bounded time.
            Err(e) => match stale {
                Some(stale) => {
                    tracing::warn!(error = %e, "secret refresh failed; serving the last good value");
                    cache.next_try = Some(Instant::now() + STALE_RETRY);
                    crate::metrics::count(crate::metrics::SECRETS_STALE, &[]);
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    async fn refetch_for_unknown_key(&self) -> Result<Option<Arc<AppSecrets>>> {
        let mut cache = self.cached.lock().await;
        if cache
            .last_refetch
            .is_some_and(|at| at.elapsed() < REFETCH_INTERVAL)
        {
            return Ok(None);
        }
        cache.last_refetch = Some(Instant::now());
        let fresh = Arc::new(self.fetch().await?);
        cache.good = Some((Instant::now(), fresh.clone()));
        cache.next_try = None;
        Ok(Some(fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn first_key_signs_and_every_key_verifies() {
        let json = format!(
            r#"{{"finexer_api_key":"sk","state_keys":[{{"kid":"new","key":"{KEY}"}},{{"kid":"old","key":"{KEY}"}}]}}"#
        );
        let secrets = AppSecrets::parse(&json).unwrap();
        assert_eq!(secrets.signing_key().kid, "new");
        assert!(secrets.verifying_key("old").is_some());
        assert!(secrets.verifying_key("gone").is_none());
    }

    #[test]
    fn the_deploy_generated_key_verifies_after_the_listed_ones() {
        let generated =
            format!(r#"{{"finexer_api_key":"sk","state_key":"{KEY}","state_key_id":"initial"}}"#);
        let secrets = AppSecrets::parse(&generated).unwrap();
        assert_eq!(secrets.signing_key().kid, "initial", "alone, it signs");
        let rotated = format!(
            r#"{{"finexer_api_key":"sk","state_keys":[{{"kid":"2027-01","key":"{KEY}"}}],"state_key":"{KEY}","state_key_id":"initial"}}"#
        );
        let secrets = AppSecrets::parse(&rotated).unwrap();
        assert_eq!(secrets.signing_key().kid, "2027-01");
        assert!(secrets.verifying_key("initial").is_some());
    }

    #[test]
    fn weak_duplicate_or_missing_keys_are_refused() {
        let cases = [
            (
                r#"{"finexer_api_key":"sk","state_keys":[]}"#.to_string(),
                "empty",
            ),
            (
                r#"{"finexer_api_key":"sk","state_keys":[{"kid":"a","key":"short"}]}"#.into(),
                "at least 32 bytes",
            ),
            (
                format!(
                    r#"{{"finexer_api_key":"sk","state_keys":[{{"kid":"a","key":"{KEY}"}},{{"kid":"a","key":"{KEY}"}}]}}"#
                ),
                "listed twice",
            ),
            (
                format!(r#"{{"finexer_api_key":" ","state_keys":[{{"kid":"a","key":"{KEY}"}}]}}"#),
                "finexer_api_key is empty",
            ),
            ("not json".into(), "not valid JSON"),
            (
                format!(r#"{{"finexer_api_key":"sk","state_keys":["{KEY}"]}}"#),
                "wrong shape",
            ),
            (
                format!(r#"{{"finexer_api_key":"sk","state_keys":"{KEY}"}}"#),
                "wrong shape",
            ),
        ];
        for (json, expected) in cases {
            let err = AppSecrets::parse(&json).err().expect(expected).to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
            assert!(!err.contains(KEY), "error leaks the key: {err}");
        }
    }
}
