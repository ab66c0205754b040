//! `finexer-check`: the contract check a platform runs before its first
//! deploy (`scripts/finexer-check.sh`, `make finexer-check`). The work is in
//! `connect_local::finexer_check`; this reads the command line and environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use connect_local::finexer_check::{
    self, EventSource, Options, Report, Source, WebhookCheck, expected, webhook,
};
use finexer_sandbox::{SandboxConfig, config::DEFAULT_API_KEY};
use secrecy::SecretString;
use shared::config::parse_web_url;
use shared::finexer::ConsentHosts;
use url::Url;

const USAGE: &str = "\
Usage: finexer-check [options]

Runs a consent journey against FINEXER_BASE_URL with our own Finexer client
(list providers, create a customer, create a consent, read it back, list its
accounts, revoke it, read it again) and reports every difference from
docs/finexer-api.md, field by field. The consent is revoked even when a step
fails; the customer it created is named at the end.

Options:
  --sandbox                 check a fresh in-process copy of our sandbox instead
  --sandbox-addr ADDR       where that sandbox listens (default 127.0.0.1:0, any free port)
  --record DIR              save every answer to DIR (new or empty), redacted
  --replay DIR              check a recording instead of calling Finexer
  --wait-for-approval SECS  after step 3, wait this long for you to approve the
                            consent on its page (a test bank), so accounts are checked
  --webhook-secret          also check one delivered webhook event's fx-signature,
                            with the secret in FINEXER_WEBHOOK_SECRET
  --webhook-listen ADDR     receive that event here (default 127.0.0.1:8787)
  --webhook-event FILE      or read a saved delivery: header lines, an empty line, the raw body
  --webhook-wait SECS       how long to wait for the event (default 300; 10 with --sandbox)
  --strict                  also exit 1 on notes (differences that break nothing)
  --print-expected          print the table of expected fields (markdown) and exit
  -h, --help                this text

Environment:
  FINEXER_BASE_URL          Finexer's API, e.g. https://api.finexer.com (required without --sandbox)
  FINEXER_API_KEY           the API key, a sandbox key (required; never printed)
  CALLBACK_URL              the return URL consents are created with
                            (default https://example.com/callback; use your stack's CallbackUrl)
  FINEXER_CONSENT_HOSTS     consent page hosts, as the functions read it (default from FINEXER_BASE_URL)
  FINEXER_TIMEOUT_MS        timeout of one call (default 10000)
  FINEXER_WEBHOOK_SECRET    the webhook's signing secret (with --webhook-secret; never printed)

Exit status: 0 no difference that breaks a journey, 1 differences, 2 the check could not run.
";

#[derive(Default)]
struct Args {
    sandbox: bool,
    sandbox_addr: Option<SocketAddr>,
    record: Option<PathBuf>,
    replay: Option<PathBuf>,
    wait_for_approval: Option<u64>,
    webhook: bool,
    webhook_listen: Option<SocketAddr>,
    webhook_event: Option<PathBuf>,
    webhook_wait: Option<u64>,
    strict: bool,
    print_expected: bool,
    help: bool,
}

fn parse_args(mut raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args::default();
    while let Some(arg) = raw.next() {
        let mut value = |name: &str| {
            raw.next()
                .filter(|v| !v.starts_with("--"))
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--sandbox" => args.sandbox = true,
            "--sandbox-addr" => args.sandbox_addr = Some(address(&value(&arg)?)?),
            "--record" => args.record = Some(value(&arg)?.into()),
            "--replay" => args.replay = Some(value(&arg)?.into()),
            "--wait-for-approval" => args.wait_for_approval = Some(seconds(&arg, &value(&arg)?)?),
            "--webhook-secret" => args.webhook = true,
            "--webhook-listen" => args.webhook_listen = Some(address(&value(&arg)?)?),
            "--webhook-event" => args.webhook_event = Some(value(&arg)?.into()),
            "--webhook-wait" => args.webhook_wait = Some(seconds(&arg, &value(&arg)?)?),
            "--strict" => args.strict = true,
            "--print-expected" => args.print_expected = true,
            "-h" | "--help" => args.help = true,
            other if other.starts_with("--webhook-secret=") => {
                return Err("the webhook secret is read from FINEXER_WEBHOOK_SECRET, never from the command line".into());
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if args.webhook_listen.is_some() && args.webhook_event.is_some() {
        return Err("--webhook-listen and --webhook-event exclude each other".into());
    }
    if (args.webhook_listen.is_some() || args.webhook_event.is_some()) && !args.webhook {
        return Err("--webhook-listen and --webhook-event go with --webhook-secret".into());
    }
    if args.replay.is_some() && (args.sandbox || args.record.is_some() || args.webhook) {
        return Err("--replay checks a recording alone".into());
    }
    Ok(args)
}

fn address(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("{text:?} is not an address like 127.0.0.1:8787"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr}: listen on a loopback address"));
    }
    Ok(addr)
}

fn seconds(name: &str, text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{name} takes whole seconds, not {text:?}"))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("finexer-check: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<ExitCode, String> {
    let args = parse_args(std::env::args().skip(1))?;
    if args.help {
        print!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    if args.print_expected {
        print!("{}", expected::markdown());
        return Ok(ExitCode::SUCCESS);
    }
    let strict = args.strict;
    let report = match &args.replay {
        Some(dir) => finexer_check::replay(dir, true).await?,
        None => check(args).await?,
    };
    Ok(exit_code(&report, strict))
}

fn exit_code(report: &Report, strict: bool) -> ExitCode {
    if report.breaking > 0 || (strict && report.notes > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn check(args: Args) -> Result<Report, String> {
    let timeout = match env("FINEXER_TIMEOUT_MS") {
        Some(ms) => Duration::from_millis(
            ms.parse()
                .map_err(|_| format!("FINEXER_TIMEOUT_MS={ms:?} is not a whole number"))?,
        ),
        None => Duration::from_secs(10),
    };
    let callback_url = match env("CALLBACK_URL") {
        Some(raw) => parse_web_url(&raw).map_err(|why| format!("CALLBACK_URL {why}"))?,
        None => Url::parse("https://example.com/callback").expect("a URL"),
    };

    // In sandbox mode the secret is made up here; it is never printed either way.
    let webhook_secret = match (args.webhook, args.sandbox) {
        (false, _) => None,
        (true, true) => Some(format!("whsec_{:032x}", rand::random::<u128>())),
        (true, false) => Some(env("FINEXER_WEBHOOK_SECRET").ok_or(
            "--webhook-secret reads the webhook's signing secret from FINEXER_WEBHOOK_SECRET, which is not set",
        )?),
    };
    let listener = match (&webhook_secret, &args.webhook_event) {
        (Some(_), None) => {
            let default = if args.sandbox {
                "127.0.0.1:0"
            } else {
                "127.0.0.1:8787"
            };
            let addr = args
                .webhook_listen
                .unwrap_or_else(|| default.parse().expect("an address"));
            Some(
                webhook::listen(addr)
                    .await
                    .map_err(|e| format!("cannot listen on {addr} for the webhook: {e}"))?,
            )
        }
        _ => None,
    };

    let mut sandbox = None;
    let (base_url, api_key, label) = if args.sandbox {
        // The sandbox's webhook sender builds a plain reqwest client, which
        // needs a process-wide TLS provider (the workspace's reqwest brings none).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let running = finexer_sandbox::start(SandboxConfig {
            bind: args
                .sandbox_addr
                .unwrap_or_else(|| "127.0.0.1:0".parse().expect("an address")),
            webhook_url: listener.as_ref().map(|l| l.url().to_owned()),
            webhook_secret: webhook_secret.clone().unwrap_or_default(),
            ..SandboxConfig::default()
        })
        .await
        .map_err(|e| format!("cannot start the sandbox: {e}"))?;
        let base = running.base_url();
        sandbox = Some(running);
        let label = format!("Finexer contract check: our sandbox, fresh at {base} (its test key)");
        (base, DEFAULT_API_KEY.to_owned(), label)
    } else {
        let base = env("FINEXER_BASE_URL")
            .ok_or("FINEXER_BASE_URL is not set (Finexer's API, e.g. https://api.finexer.com; or pass --sandbox)")?;
        let key = env("FINEXER_API_KEY")
            .ok_or("FINEXER_API_KEY is not set (use a sandbox key; it is never printed)")?;
        let label = format!(
            "Finexer contract check: {base} (FINEXER_BASE_URL), key from FINEXER_API_KEY (not shown)"
        );
        (base, key, label)
    };
    let base_url = parse_web_url(&base_url).map_err(|why| format!("FINEXER_BASE_URL {why}"))?;
    let consent_hosts = match env("FINEXER_CONSENT_HOSTS") {
        Some(raw) => {
            ConsentHosts::parse(&raw).map_err(|why| format!("FINEXER_CONSENT_HOSTS: {why}"))?
        }
        None => ConsentHosts::derived_from(&base_url),
    };
    let webhook = match webhook_secret {
        None => None,
        Some(secret) => Some(WebhookCheck {
            secret: SecretString::from(secret),
            source: match (listener, args.webhook_event) {
                (Some(listener), _) => EventSource::Listen(listener),
                (None, Some(path)) => EventSource::Saved(path),
                (None, None) => unreachable!("a listener is opened unless a file is given"),
            },
            wait: Duration::from_secs(args.webhook_wait.unwrap_or(if args.sandbox {
                10
            } else {
                300
            })),
        }),
    };

    let report = finexer_check::run(Options {
        label: format!(
            "{label}\nReturn URL: {callback_url} + ?state=<a signed state token, as create-link sends>"
        ),
        base_url,
        source: Source::Network {
            api_key: SecretString::from(api_key),
            timeout,
        },
        callback_url,
        consent_hosts,
        wait_for_approval: args.wait_for_approval.map(Duration::from_secs),
        poll_every: Duration::from_secs(2),
        record: args.record,
        webhook,
        interactive: true,
    })
    .await?;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    Ok(report)
}
