//! What the suites that run the function binaries under the Runtime API
//! emulator (`local/tests/hostile_events.rs`, `connect-bench`) share.

use std::time::Duration;

/// How long a function's init may take before the run counts as failed.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one invocation may take.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The secret variables infra/template.yaml sets for `function` (a binary's
/// name), and only those: a function given another would fetch it at start-up
/// (and production's role would refuse it). tests/infra/check_consistency.py
/// holds the template to what the code reads.
pub fn secret_variables(function: &str) -> &'static [&'static str] {
    match function {
        "create-link" | "callback" => &["FINEXER_API_KEY_SECRET_ID", "STATE_KEYS_SECRET_ID"],
        "webhook" => &["FINEXER_API_KEY_SECRET_ID", "WEBHOOK_SECRETS_SECRET_ID"],
        _ => &["FINEXER_API_KEY_SECRET_ID"],
    }
}

/// The user the events act as (creates links, revokes, confirms).
pub const USER: &str = "test-user";
/// A second user: lists consents, apart from `USER`'s.
pub const OTHER_USER: &str = "test-other-user";
