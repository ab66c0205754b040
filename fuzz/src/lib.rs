//! What the fuzz targets share: the oracle (`model`, from the test kit,
//! which the property tests use too) and one fixture per process.

pub use connect_testkit::model;

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use shared::secrets::AppSecrets;

pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub fixture: model::Fixture,
    pub secrets: AppSecrets,
}

/// The process's fixture, built on first use (libFuzzer runs one input at a
/// time, so one current-thread runtime serves them all).
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let fixture = rt.block_on(model::Fixture::new(model::DEAD_FINEXER));
        Harness {
            rt,
            fixture,
            secrets: model::secrets(),
        }
    })
}

/// Any bytes as a query the gateway could pass on: valid UTF-8 characters
/// are kept when the URI takes them, anything else is percent-encoded.
pub fn query_from_bytes(data: &[u8]) -> String {
    let raw = model::escape_query(&String::from_utf8_lossy(data));
    if model::query_is_valid(&raw) {
        raw
    } else {
        model::escape_invalid_query_bytes(data)
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
