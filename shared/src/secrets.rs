//! Secrets from AWS Secrets Manager, in three secrets so that each
//! function's role reads only what it uses: the Finexer API key, the
//! state-signing keys and Finexer's webhook signing secrets. A function is
//! configured with the ids of the ones it uses (`FINEXER_API_KEY_SECRET_ID`,
//! `STATE_KEYS_SECRET_ID`, `WEBHOOK_SECRETS_SECRET_ID`). Each is fetched on
//! its first use and cached for a configured time, so a warm container asks
//! at most once per TTL and a cold start pays nothing until it needs one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::error::{Error, Result};

/// The Finexer API key secret's JSON: `{"finexer_api_key": "..."}`.
#[derive(Deserialize)]
pub struct FinexerApiKey {
    pub finexer_api_key: SecretString,
}

/// The state-signing keys secret's JSON:
/// `{"state_keys": [{"kid": "2026-11", "key": "..."}, ...]}`.
/// The first state key signs; every listed key verifies, so a key is rotated
/// by putting a new one first and dropping the old one after a state lifetime.
/// A top-level `state_key` (kid `state_key_id`) counts as the last key: it is
/// the one CloudFormation generates at the first deploy, since
/// `GenerateSecretString` can only add a top-level string.
#[derive(Deserialize, Clone)]
#[serde(from = "StoredStateKeys")]
pub struct StateKeys {
    pub keys: Vec<SigningKey>,
}

/// The webhook secrets' JSON: `{"webhook_secrets": ["...", ...]}`, Finexer's
/// signing secrets, newest first; any one verifies, so a secret is rotated by
/// adding the new one before Finexer switches. An empty list refuses every
/// delivery.
#[derive(Deserialize, Clone)]
pub struct WebhookSecrets {
    #[serde(default)]
    pub webhook_secrets: Vec<SecretString>,
}

/// All three together: fixtures for tests, benchmarks and tools, whose JSON
/// is the three secrets' keys in one object.
pub struct AppSecrets {
    pub finexer_api_key: SecretString,
    pub state_keys: StateKeys,
    pub webhook_secrets: Vec<SecretString>,
}

#[derive(Deserialize, Clone)]
pub struct SigningKey {
    pub kid: String,
    pub key: SecretString,
}

/// The state keys as stored, before the generated key joins the list.
#[derive(Deserialize)]
struct StoredStateKeys {
    #[serde(default)]
    state_keys: Vec<SigningKey>,
    state_key: Option<SecretString>,
    state_key_id: Option<String>,
}

impl From<StoredStateKeys> for StateKeys {
    fn from(stored: StoredStateKeys) -> Self {
        let mut keys = stored.state_keys;
        if let Some(key) = stored.state_key {
            keys.push(SigningKey {
                kid: stored.state_key_id.unwrap_or_else(|| "generated".into()),
                key,
            });
        }
        StateKeys { keys }
    }
}

/// Shortest signing key accepted: HS256 wants at least its output size.
pub const MIN_KEY_BYTES: usize = 32;

/// One of the three secrets: how its JSON is read and checked.
pub trait SecretPart: DeserializeOwned + Send + Sync + 'static {
    /// The variable naming the secret (shared/src/config.rs).
    const VARIABLE: &'static str;

    fn validate(&self) -> Result<()>;

    fn parse(json: &str) -> Result<Self> {
        // serde's message may quote the offending value, which could be key
        // material: report only what kind of error and where.
        let part: Self = serde_json::from_str(json).map_err(|e| {
            Error::SecretInvalid(format!(
                "secret is not valid JSON or has the wrong shape ({:?} at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        part.validate()?;
        Ok(part)
    }
}

impl SecretPart for FinexerApiKey {
    const VARIABLE: &'static str = "FINEXER_API_KEY_SECRET_ID";

    fn validate(&self) -> Result<()> {
        if self.finexer_api_key.expose_secret().trim().is_empty() {
            return Err(Error::SecretInvalid("finexer_api_key is empty".into()));
        }
        Ok(())
    }
}

impl SecretPart for StateKeys {
    const VARIABLE: &'static str = "STATE_KEYS_SECRET_ID";

    fn validate(&self) -> Result<()> {
        if self.keys.is_empty() {
            return Err(Error::SecretInvalid(
                "no state key (state_keys is empty and there is no state_key)".into(),
            ));
        }
        for (i, key) in self.keys.iter().enumerate() {
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
            if self.keys[..i].iter().any(|k| k.kid == key.kid) {
                return Err(Error::SecretInvalid(format!(
                    "state_keys[{i}].kid is listed twice"
                )));
            }
        }
        Ok(())
    }
}

impl SecretPart for WebhookSecrets {
    const VARIABLE: &'static str = "WEBHOOK_SECRETS_SECRET_ID";

    fn validate(&self) -> Result<()> {
        if let Some(i) = self
            .webhook_secrets
            .iter()
            .position(|secret| secret.expose_secret().trim().is_empty())
        {
            return Err(Error::SecretInvalid(format!(
                "webhook_secrets[{i}] is empty"
            )));
        }
        Ok(())
    }
}

impl StateKeys {
    /// The key new state tokens are signed with.
    pub fn signing_key(&self) -> &SigningKey {
        &self.keys[0]
    }

    pub fn verifying_key(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

impl AsRef<StateKeys> for StateKeys {
    fn as_ref(&self) -> &StateKeys {
        self
    }
}

impl AsRef<StateKeys> for AppSecrets {
    fn as_ref(&self) -> &StateKeys {
        &self.state_keys
    }
}

impl AppSecrets {
    /// The three secrets' keys in one JSON object, each part read and checked
    /// as its own secret is.
    pub fn parse(json: &str) -> Result<Self> {
        let api = FinexerApiKey::parse(json)?;
        let state_keys = StateKeys::parse(json)?;
        let webhooks = WebhookSecrets::parse(json)?;
        Ok(AppSecrets {
            finexer_api_key: api.finexer_api_key,
            state_keys,
            webhook_secrets: webhooks.webhook_secrets,
        })
    }

    pub fn signing_key(&self) -> &SigningKey {
        self.state_keys.signing_key()
    }

    pub fn verifying_key(&self, kid: &str) -> Option<&SigningKey> {
        self.state_keys.verifying_key(kid)
    }
}

#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn finexer_api_key(&self) -> Result<Arc<FinexerApiKey>>;
    async fn state_keys(&self) -> Result<Arc<StateKeys>>;
    async fn webhook_secrets(&self) -> Result<Arc<WebhookSecrets>>;

    /// Fetches the state keys anew because a token names a key the cached
    /// ones lack (a key added moments ago). None when the source cannot or,
    /// having just done so, will not fetch again yet.
    async fn refetch_for_unknown_key(&self) -> Result<Option<Arc<StateKeys>>> {
        Ok(None)
    }
}

/// Fixed secrets, for tests, benchmarks and tools (feature `test-util`).
#[cfg(any(test, feature = "test-util"))]
pub struct StaticSecrets(pub Arc<AppSecrets>);

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl SecretSource for StaticSecrets {
    async fn finexer_api_key(&self) -> Result<Arc<FinexerApiKey>> {
        Ok(Arc::new(FinexerApiKey {
            finexer_api_key: self.0.finexer_api_key.clone(),
        }))
    }

    async fn state_keys(&self) -> Result<Arc<StateKeys>> {
        Ok(Arc::new(self.0.state_keys.clone()))
    }

    async fn webhook_secrets(&self) -> Result<Arc<WebhookSecrets>> {
        Ok(Arc::new(WebhookSecrets {
            webhook_secrets: self.0.webhook_secrets.clone(),
        }))
    }
}

/// The ids of the secrets a function is configured with (None: it does not
/// use that one, and its role cannot read it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretIds {
    pub finexer_api_key: Option<String>,
    pub state_keys: Option<String>,
    pub webhook_secrets: Option<String>,
}

/// The three secrets from Secrets Manager, each cached on its own.
pub struct SecretsManagerSource {
    finexer_api_key: Option<CachedSecret<FinexerApiKey>>,
    state_keys: Option<CachedSecret<StateKeys>>,
    webhook_secrets: Option<CachedSecret<WebhookSecrets>>,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, ids: SecretIds, ttl: Duration) -> Self {
        Self {
            finexer_api_key: CachedSecret::configured(&client, ids.finexer_api_key, ttl),
            state_keys: CachedSecret::configured(&client, ids.state_keys, ttl),
            webhook_secrets: CachedSecret::configured(&client, ids.webhook_secrets, ttl),
        }
    }
}

/// A part the function was not configured with: a deployment mistake (its
/// variable is missing), so our error, not the caller's.
fn not_configured<T: SecretPart>(cached: &Option<CachedSecret<T>>) -> Result<&CachedSecret<T>> {
    cached.as_ref().ok_or_else(|| {
        Error::Config(format!(
            "{} is not set, but this function needs that secret",
            T::VARIABLE
        ))
    })
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn finexer_api_key(&self) -> Result<Arc<FinexerApiKey>> {
        not_configured(&self.finexer_api_key)?.get().await
    }

    async fn state_keys(&self) -> Result<Arc<StateKeys>> {
        not_configured(&self.state_keys)?.get().await
    }

    async fn webhook_secrets(&self) -> Result<Arc<WebhookSecrets>> {
        not_configured(&self.webhook_secrets)?.get().await
    }

    async fn refetch_for_unknown_key(&self) -> Result<Option<Arc<StateKeys>>> {
        not_configured(&self.state_keys)?.refetch().await
    }
}

/// One secret, fetched on first use and kept for the TTL.
struct CachedSecret<T> {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    // A mutex rather than a read-write lock: concurrent first requests wait for
    // one fetch instead of all fetching.
    cached: Mutex<Cache<T>>,
}

struct Cache<T> {
    /// The last good value and when it was fetched.
    good: Option<(Instant, Arc<T>)>,
    /// No refresh is tried before this, after one failed (stale serving).
    next_try: Option<Instant>,
    /// The last refetch for an unknown key.
    last_refetch: Option<Instant>,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache {
            good: None,
            next_try: None,
            last_refetch: None,
        }
    }
}

/// An unknown key triggers at most one refetch per process in this time, so
/// forged `kid`s cannot turn into a Secrets Manager flood.
const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How long past its TTL a good value is served while Secrets Manager fails.
const STALE_LIMIT: Duration = Duration::from_secs(3600);
/// How often a refresh is retried meanwhile.
const STALE_RETRY: Duration = Duration::from_secs(30);

impl<T: SecretPart> CachedSecret<T> {
    fn configured(
        client: &aws_sdk_secretsmanager::Client,
        secret_id: Option<String>,
        ttl: Duration,
    ) -> Option<Self> {
        secret_id.map(|secret_id| Self::new(client.clone(), secret_id, ttl))
    }

    fn new(client: aws_sdk_secretsmanager::Client, secret_id: String, ttl: Duration) -> Self {
        Self {
            client,
            secret_id,
            ttl,
            cached: Mutex::new(Cache::default()),
        }
    }

    async fn fetch(&self) -> Result<T> {
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
        T::parse(json)
    }

    async fn get(&self) -> Result<Arc<T>> {
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

    async fn refetch(&self) -> Result<Option<Arc<T>>> {
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
    fn each_secret_reads_its_own_json() {
        let api = FinexerApiKey::parse(r#"{"finexer_api_key":"sk"}"#).unwrap();
        assert_eq!(api.finexer_api_key.expose_secret(), "sk");
        let generated = format!(r#"{{"state_key":"{KEY}","state_key_id":"initial"}}"#);
        assert_eq!(
            StateKeys::parse(&generated).unwrap().signing_key().kid,
            "initial"
        );
        let webhooks = WebhookSecrets::parse(r#"{"webhook_secrets":["whsec"]}"#).unwrap();
        assert_eq!(webhooks.webhook_secrets.len(), 1);
        // An empty list (the template's value until ops put one in) refuses
        // every delivery, but is not a broken secret.
        assert!(
            WebhookSecrets::parse(r#"{"webhook_secrets":[]}"#)
                .unwrap()
                .webhook_secrets
                .is_empty()
        );
        for (err, expected) in [
            (
                FinexerApiKey::parse(r#"{"finexer_api_key":""}"#).err(),
                "finexer_api_key is empty",
            ),
            (
                FinexerApiKey::parse(r#"{"state_keys":[]}"#).err(),
                "wrong shape",
            ),
            (StateKeys::parse(r#"{}"#).err(), "no state key"),
            (
                WebhookSecrets::parse(r#"{"webhook_secrets":[" "]}"#).err(),
                "webhook_secrets[0] is empty",
            ),
        ] {
            let err = err.expect(expected).to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_secret_the_function_is_not_configured_with_is_our_error() {
        let client = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
                .region(aws_sdk_secretsmanager::config::Region::new("eu-west-2"))
                .build(),
        );
        // No id at all: nothing is fetched, whatever is asked.
        let source = SecretsManagerSource::new(client, SecretIds::default(), Duration::ZERO);
        for (err, variable) in [
            (
                source.finexer_api_key().await.err(),
                "FINEXER_API_KEY_SECRET_ID",
            ),
            (source.state_keys().await.err(), "STATE_KEYS_SECRET_ID"),
            (
                source.webhook_secrets().await.err(),
                "WEBHOOK_SECRETS_SECRET_ID",
            ),
            (
                source.refetch_for_unknown_key().await.err(),
                "STATE_KEYS_SECRET_ID",
            ),
        ] {
            let err = err.expect(variable);
            assert!(err.to_string().contains(variable), "{err}");
            assert_eq!(err.status(), 500, "a deployment mistake: {err}");
        }
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
