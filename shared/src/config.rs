//! Configuration, read and validated once at start-up. Every problem is
//! reported at once, naming the variable, so a misconfigured deploy fails
//! with one clear message instead of at the first request.

use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};
use crate::finexer::ConsentHosts;
use crate::secrets::SecretIds;

#[derive(Debug, Clone)]
pub struct Config {
    /// Finexer API base URL (`FINEXER_BASE_URL`).
    pub finexer_base_url: Url,
    /// Hosts Finexer's consent pages may be on (`FINEXER_CONSENT_HOSTS`;
    /// derived from the base URL when unset).
    pub finexer_consent_hosts: ConsentHosts,
    /// Per-attempt timeout of a Finexer call (`FINEXER_TIMEOUT_MS`).
    pub finexer_timeout: Duration,
    /// Per-attempt timeout of a DynamoDB or Secrets Manager call
    /// (`STORE_TIMEOUT_MS`); the SDK retries a timed-out attempt.
    pub store_timeout: Duration,
    /// The Secrets Manager secrets this function reads
    /// (`FINEXER_API_KEY_SECRET_ID`, `STATE_KEYS_SECRET_ID`,
    /// `WEBHOOK_SECRETS_SECRET_ID`; each unset when it does not use it).
    pub secret_ids: SecretIds,
    /// How long fetched secrets are reused (`SECRETS_CACHE_SECONDS`).
    pub secrets_cache_ttl: Duration,
    /// Whether a cold start opens its connections and fetches its secret in
    /// the background while it waits for the first event (`STARTUP_PREFETCH`).
    pub startup_prefetch: bool,
    /// DynamoDB table of consents, customers and states (`CONSENT_TABLE`).
    pub table_name: String,
    /// Our public callback URL, registered at Finexer (`CALLBACK_URL`).
    pub callback_url: Url,
    /// Frontend pages the callback may send the browser back to
    /// (`FRONTEND_URLS`, comma separated); the first is the default.
    pub frontend_urls: Vec<Url>,
    /// Lifetime of a state token (`STATE_TTL_SECONDS`).
    pub state_ttl: Duration,
    /// How long the one-time confirmation code from the callback stays
    /// valid; an authorized consent unconfirmed by then is revoked
    /// (`CONFIRM_TTL_SECONDS`).
    pub confirm_ttl: Duration,
    /// Records the reconciler reads per page (`RECONCILE_PAGE_SIZE`).
    pub reconcile_page_size: usize,
    /// Whether account data may be shown to users (`ACCOUNT_DATA_ENABLED`).
    /// Off unless switched on: showing it needs FCA authorisation.
    pub account_data_enabled: bool,
    /// How account numbers, IBANs and card numbers are served
    /// (`ACCOUNT_NUMBERS`).
    pub account_numbers: AccountNumbers,
    /// Most pending links one user may have at once (`MAX_PENDING_LINKS`).
    pub max_pending_links: usize,
    /// CloudWatch namespace of the functions' metrics (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
}

/// How much of an account number, IBAN or card number the account routes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountNumbers {
    /// Only the last four characters; the rest masked.
    Masked,
    Full,
}

/// Every variable, its default (None = required) and meaning. The README's
/// configuration table is rendered from it ([`markdown_table`]); a test keeps
/// the two equal.
pub const VARIABLES: &[(&str, Option<&str>, &str)] = &[
    ("CONSENT_TABLE", None, "DynamoDB table name"),
    (
        "FINEXER_API_KEY_SECRET_ID",
        Some(""),
        "Secrets Manager secret (id or ARN) with `{\"finexer_api_key\": \"...\"}`; set for the functions that call Finexer",
    ),
    (
        "STATE_KEYS_SECRET_ID",
        Some(""),
        "Secrets Manager secret with `{\"state_keys\": [{\"kid\": \"...\", \"key\": \"<32+ bytes>\"}]}` (and/or the generated `state_key`, `state_key_id`); set for the functions that sign or verify the state",
    ),
    (
        "WEBHOOK_SECRETS_SECRET_ID",
        Some(""),
        "Secrets Manager secret with `{\"webhook_secrets\": [\"<Finexer's signing secret>\", ...]}` (an empty list refuses every delivery); set for the webhook function",
    ),
    (
        "CALLBACK_URL",
        None,
        "public URL of the callback, as registered at Finexer",
    ),
    (
        "FRONTEND_URLS",
        None,
        "comma-separated frontend URLs the user may be returned to; the first is the default",
    ),
    (
        "FINEXER_BASE_URL",
        Some("https://api.finexer.com"),
        "Finexer API base URL",
    ),
    (
        "FINEXER_CA_BUNDLE",
        Some(""),
        "PEM file of CA certificates the Finexer client trusts besides Mozilla's roots (compiled in); read at start-up only when set (a local TLS terminator)",
    ),
    (
        "AWS_CA_BUNDLE",
        Some(""),
        "the same for the DynamoDB and Secrets Manager clients, as the AWS SDKs and CLI define it",
    ),
    (
        "FINEXER_CONSENT_HOSTS",
        Some(""),
        "comma-separated hosts Finexer's `consent_url` may be on (`*.` for subdomains); empty: the base URL's host and, for `api.<domain>`, `<domain>` and its subdomains",
    ),
    (
        "FINEXER_TIMEOUT_MS",
        Some("5000"),
        "timeout of one Finexer call (reads are retried up to 3 times)",
    ),
    (
        "STORE_TIMEOUT_MS",
        Some("2000"),
        "timeout of one DynamoDB or Secrets Manager attempt (50 to 20000); the SDK retries up to 3",
    ),
    (
        "SECRETS_CACHE_SECONDS",
        Some("300"),
        "how long fetched secrets are reused",
    ),
    (
        "STARTUP_PREFETCH",
        Some("true"),
        "on a cold start, fetch the secret and open the DynamoDB and Finexer connections in the background while waiting for the first event (`false`: the first request does it)",
    ),
    (
        "STATE_TTL_SECONDS",
        Some("900"),
        "lifetime of a state token (60 to 3600)",
    ),
    (
        "CONFIRM_TTL_SECONDS",
        Some("600"),
        "how long the owner has to confirm an authorized consent with the callback's code (60 to 86400); unconfirmed, it is revoked",
    ),
    (
        "ACCOUNT_DATA_ENABLED",
        Some("false"),
        "serve the account routes; `false` answers them 403 (showing account data needs FCA authorisation, or acting as Finexer's agent)",
    ),
    (
        "ACCOUNT_NUMBERS",
        Some("masked"),
        "`masked` serves account numbers, IBANs and card numbers as their last four characters only (`****1234`); `full` serves them whole",
    ),
    (
        "MAX_PENDING_LINKS",
        Some("5"),
        "most links one user may have pending at once (1 to 1000); a link stops counting once it has an outcome, is revoked, or its state lapses; the next `POST /links` is answered 429",
    ),
    (
        "RECONCILE_PAGE_SIZE",
        Some("100"),
        "records the reconciler reads per page of the `due` index (1 to 1000)",
    ),
    (
        "METRICS_NAMESPACE",
        Some("FinexerConnect"),
        "CloudWatch namespace of the functions' metrics (EMF); letters, digits, spaces and `.-_/#:`, not `AWS/...`",
    ),
];

/// The README's configuration table: one row per [`VARIABLES`] entry.
pub fn markdown_table() -> String {
    let mut table = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for (name, default, meaning) in VARIABLES {
        let default = match default {
            None => "required".to_owned(),
            Some("") => "empty".to_owned(),
            Some(value) => format!("`{value}`"),
        };
        table.push_str(&format!("| `{name}` | {default} | {meaning} |\n"));
    }
    table
}

impl Config {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut reader = Reader {
            lookup: &lookup,
            problems: Vec::new(),
        };
        let finexer_base_url = reader.url("FINEXER_BASE_URL");
        let finexer_consent_hosts =
            reader.consent_hosts("FINEXER_CONSENT_HOSTS", &finexer_base_url);
        let finexer_timeout = reader.millis("FINEXER_TIMEOUT_MS", 1, 60_000);
        let store_timeout = reader.millis("STORE_TIMEOUT_MS", 50, 20_000);
        let secret_ids = SecretIds {
            finexer_api_key: reader.optional("FINEXER_API_KEY_SECRET_ID"),
            state_keys: reader.optional("STATE_KEYS_SECRET_ID"),
            webhook_secrets: reader.optional("WEBHOOK_SECRETS_SECRET_ID"),
        };
        let secrets_cache_ttl = reader.seconds("SECRETS_CACHE_SECONDS", 0, 86_400);
        let startup_prefetch = reader.boolean("STARTUP_PREFETCH");
        let table_name = reader.string("CONSENT_TABLE");
        let callback_url = reader.url("CALLBACK_URL");
        let frontend_urls = reader.url_list("FRONTEND_URLS");
        let state_ttl = reader.seconds("STATE_TTL_SECONDS", 60, 3_600);
        let confirm_ttl = reader.seconds("CONFIRM_TTL_SECONDS", 60, 86_400);
        let account_data_enabled = reader.boolean("ACCOUNT_DATA_ENABLED");
        let account_numbers = reader.account_numbers("ACCOUNT_NUMBERS");
        let max_pending_links = reader.number("MAX_PENDING_LINKS", 1, 1000);
        let reconcile_page_size = reader.number("RECONCILE_PAGE_SIZE", 1, 1000);
        let metrics_namespace = reader.namespace("METRICS_NAMESPACE");

        if !reader.problems.is_empty() {
            return Err(Error::Config(reader.problems.join("; ")));
        }
        Ok(Config {
            finexer_base_url: finexer_base_url.expect("checked"),
            finexer_consent_hosts: finexer_consent_hosts.expect("checked"),
            finexer_timeout: finexer_timeout.expect("checked"),
            store_timeout: store_timeout.expect("checked"),
            secret_ids,
            secrets_cache_ttl: secrets_cache_ttl.expect("checked"),
            startup_prefetch: startup_prefetch.expect("checked"),
            table_name: table_name.expect("checked"),
            callback_url: callback_url.expect("checked"),
            frontend_urls: frontend_urls.expect("checked"),
            state_ttl: state_ttl.expect("checked"),
            confirm_ttl: confirm_ttl.expect("checked"),
            account_data_enabled: account_data_enabled.expect("checked"),
            account_numbers: account_numbers.expect("checked"),
            max_pending_links: max_pending_links.expect("checked") as usize,
            reconcile_page_size: reconcile_page_size.expect("checked") as usize,
            metrics_namespace: metrics_namespace.expect("checked"),
        })
    }

    /// Where the browser goes when nothing more specific is known.
    pub fn default_frontend(&self) -> &Url {
        &self.frontend_urls[0]
    }
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn raw(&mut self, name: &str) -> Option<String> {
        let value = (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if value.is_some() {
            return value;
        }
        let default = VARIABLES.iter().find(|(n, _, _)| *n == name)?.1;
        match default {
            Some(default) => Some(default.to_owned()),
            None => {
                self.problems.push(format!("{name} is required"));
                None
            }
        }
    }

    fn string(&mut self, name: &str) -> Option<String> {
        self.raw(name)
    }

    /// A variable whose empty default means "not used here".
    fn optional(&mut self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !v.is_empty())
    }

    fn url(&mut self, name: &str) -> Option<Url> {
        let raw = self.raw(name)?;
        match parse_web_url(&raw) {
            Ok(url) => Some(url),
            Err(why) => {
                self.problems.push(format!("{name} {why}"));
                None
            }
        }
    }

    fn url_list(&mut self, name: &str) -> Option<Vec<Url>> {
        let raw = self.raw(name)?;
        let mut urls = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match parse_web_url(part) {
                Ok(url) => urls.push(url),
                Err(why) => self.problems.push(format!("{name}: {part:?} {why}")),
            }
        }
        if urls.is_empty() {
            self.problems.push(format!("{name} lists no URL"));
            return None;
        }
        Some(urls)
    }

    /// A CloudWatch namespace: 1 to 255 of letters, digits and `.-_/#:`,
    /// not starting with `AWS/` (CloudWatch's own).
    fn namespace(&mut self, name: &str) -> Option<String> {
        let raw = self.raw(name)?;
        let valid = raw.len() <= 255
            && !raw.starts_with("AWS/")
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" .-_/#:".contains(&b));
        if valid {
            Some(raw)
        } else {
            self.problems.push(format!(
                "{name} must be a CloudWatch namespace (letters, digits, spaces and .-_/#:, at most 255, not AWS/...)"
            ));
            None
        }
    }

    fn number(&mut self, name: &str, min: u64, max: u64) -> Option<u64> {
        let raw = self.raw(name)?;
        match raw.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problems
                    .push(format!("{name} must be a whole number from {min} to {max}"));
                None
            }
        }
    }

    fn seconds(&mut self, name: &str, min: u64, max: u64) -> Option<Duration> {
        self.number(name, min, max).map(Duration::from_secs)
    }

    fn millis(&mut self, name: &str, min: u64, max: u64) -> Option<Duration> {
        self.number(name, min, max).map(Duration::from_millis)
    }

    fn consent_hosts(&mut self, name: &str, base: &Option<Url>) -> Option<ConsentHosts> {
        let raw = (self.lookup)(name).unwrap_or_default();
        if raw.trim().is_empty() {
            return base.as_ref().map(ConsentHosts::derived_from);
        }
        match ConsentHosts::parse(&raw) {
            Ok(hosts) => Some(hosts),
            Err(why) => {
                self.problems.push(format!("{name}: {why}"));
                None
            }
        }
    }

    fn account_numbers(&mut self, name: &str) -> Option<AccountNumbers> {
        match self.raw(name)?.to_ascii_lowercase().as_str() {
            "masked" => Some(AccountNumbers::Masked),
            "full" => Some(AccountNumbers::Full),
            _ => {
                self.problems.push(format!("{name} must be masked or full"));
                None
            }
        }
    }

    fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.raw(name)?.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => {
                self.problems.push(format!("{name} must be true or false"));
                None
            }
        }
    }
}

/// An absolute URL we may send a browser or request to: https anywhere, plain
/// http only for loopback (local runs).
pub fn parse_web_url(raw: &str) -> std::result::Result<Url, &'static str> {
    let url = Url::parse(raw).map_err(|_| "is not an absolute URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry user info");
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err("must use https (http is allowed for 127.0.0.1 and localhost only)"),
        _ => Err("must be an http(s) URL"),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_readme_shows_the_configuration_table_rendered_from_the_code() {
        let readme = include_str!("../../README.md");
        let table = super::markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's configuration table differs from config::VARIABLES; replace it with:\n{table}"
        );
    }

    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const REQUIRED: &[(&str, &str)] = &[
        ("CONSENT_TABLE", "consents"),
        ("CALLBACK_URL", "https://api.example.com/callback"),
        (
            "FRONTEND_URLS",
            "https://app.example.com/connected, https://app.example.com/other",
        ),
    ];

    #[test]
    fn defaults_apply_when_only_required_variables_are_set() {
        let config = with(REQUIRED).unwrap();
        assert_eq!(config.finexer_base_url.as_str(), "https://api.finexer.com/");
        assert_eq!(config.state_ttl, Duration::from_secs(900));
        assert_eq!(config.frontend_urls.len(), 2);
        assert_eq!(
            config.default_frontend().as_str(),
            "https://app.example.com/connected"
        );
        assert!(
            !config.account_data_enabled,
            "account data is off unless switched on"
        );
        assert_eq!(config.confirm_ttl, Duration::from_secs(600));
        assert_eq!(config.metrics_namespace, "FinexerConnect");
        assert_eq!(config.max_pending_links, 5);
        assert_eq!(
            config.account_numbers,
            AccountNumbers::Masked,
            "account numbers are masked unless asked for whole"
        );
        assert_eq!(
            config.secret_ids,
            SecretIds::default(),
            "no secret unless configured"
        );
        assert!(
            config.startup_prefetch,
            "the prefetch is on unless switched off"
        );
    }

    #[test]
    fn the_startup_prefetch_can_be_switched_off() {
        let mut vars = REQUIRED.to_vec();
        vars.push(("STARTUP_PREFETCH", "false"));
        assert!(!with(&vars).unwrap().startup_prefetch);
        let mut vars = REQUIRED.to_vec();
        vars.push(("STARTUP_PREFETCH", "later"));
        let err = with(&vars).unwrap_err().to_string();
        assert!(
            err.contains("STARTUP_PREFETCH must be true or false"),
            "{err}"
        );
    }

    #[test]
    fn account_numbers_and_the_pending_cap_are_checked() {
        let mut vars = REQUIRED.to_vec();
        vars.push(("ACCOUNT_NUMBERS", "full"));
        vars.push(("MAX_PENDING_LINKS", "20"));
        let config = with(&vars).unwrap();
        assert_eq!(config.account_numbers, AccountNumbers::Full);
        assert_eq!(config.max_pending_links, 20);
        for (name, bad) in [
            ("ACCOUNT_NUMBERS", "partial"),
            ("MAX_PENDING_LINKS", "0"),
            ("MAX_PENDING_LINKS", "1001"),
        ] {
            let mut vars = REQUIRED.to_vec();
            vars.push((name, bad));
            let err = with(&vars).unwrap_err().to_string();
            assert!(err.contains(name), "{name}={bad}: {err}");
        }
    }

    #[test]
    fn each_secret_is_configured_on_its_own() {
        let mut vars = REQUIRED.to_vec();
        vars.push(("WEBHOOK_SECRETS_SECRET_ID", "connect/webhook-secrets"));
        vars.push(("FINEXER_API_KEY_SECRET_ID", " connect/api-key "));
        vars.push(("STATE_KEYS_SECRET_ID", ""));
        assert_eq!(
            with(&vars).unwrap().secret_ids,
            SecretIds {
                finexer_api_key: Some("connect/api-key".into()),
                state_keys: None,
                webhook_secrets: Some("connect/webhook-secrets".into()),
            }
        );
    }

    #[test]
    fn the_metrics_namespace_is_checked() {
        let mut vars = REQUIRED.to_vec();
        vars.push(("METRICS_NAMESPACE", "Connect/staging"));
        assert_eq!(with(&vars).unwrap().metrics_namespace, "Connect/staging");
        let long = "x".repeat(256);
        for bad in ["AWS/Lambda", "a\"b", long.as_str()] {
            let mut vars = REQUIRED.to_vec();
            vars.push(("METRICS_NAMESPACE", bad));
            let err = with(&vars).unwrap_err().to_string();
            assert!(err.contains("METRICS_NAMESPACE"), "{bad}: {err}");
        }
    }

    #[test]
    fn every_missing_or_bad_variable_is_named_at_once() {
        let err = with(&[
            ("CALLBACK_URL", "http://api.example.com/callback"),
            ("STATE_TTL_SECONDS", "ten"),
            ("ACCOUNT_DATA_ENABLED", "maybe"),
        ])
        .unwrap_err()
        .to_string();
        for name in [
            "CONSENT_TABLE is required",
            "FRONTEND_URLS is required",
            "CALLBACK_URL must use https",
            "STATE_TTL_SECONDS must be a whole number",
            "ACCOUNT_DATA_ENABLED must be true or false",
        ] {
            assert!(err.contains(name), "{name:?} missing from {err:?}");
        }
    }

    #[test]
    fn plain_http_is_allowed_for_loopback_only() {
        assert!(parse_web_url("http://127.0.0.1:3000/callback").is_ok());
        assert!(parse_web_url("http://localhost:3000/").is_ok());
        assert!(parse_web_url("http://example.com/").is_err());
        assert!(parse_web_url("javascript:alert(1)").is_err());
        assert!(parse_web_url("https://user@example.com/").is_err());
    }
}
