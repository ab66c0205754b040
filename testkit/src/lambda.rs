//! What the suites that run the function binaries under the Runtime API
//! emulator (`local/tests/hostile_events.rs`, `connect-bench`) share.

use std::time::Duration;

/// How long a function's init may take before the run counts as failed.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one invocation may take.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The user the events act as (creates links, revokes, confirms).
pub const USER: &str = "test-user";
/// A second user: lists consents, apart from `USER`'s.
pub const OTHER_USER: &str = "test-other-user";
