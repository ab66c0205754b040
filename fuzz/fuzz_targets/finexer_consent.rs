//! Finexer's consent JSON, as the client parses it: never a panic; a value
//! parses exactly when the model says, unknown statuses are kept verbatim.
#![no_main]

use connect_fuzz::model;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::consent::ConsentStatus;
use shared::finexer::{Consent, Customer};

fuzz_target!(|data: &[u8]| {
    // What the client does with a 2xx body.
    let direct = serde_json::from_slice::<Consent>(data);
    let _ = serde_json::from_slice::<Customer>(data);
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        if let Err(problem) = model::check_consent(&value) {
            panic!("{problem}");
        }
        // Straight from bytes and through a Value agree when both parse
        // (bytes may differ only by duplicate keys or out-of-range numbers
        // in ignored fields).
        if let (Ok(a), Ok(b)) = (&direct, serde_json::from_value::<Consent>(value)) {
            assert_eq!(a.id, b.id);
            assert_eq!(a.status, b.status);
        }
    }
    if let Ok(consent) = &direct {
        if let ConsentStatus::Other(raw) = &consent.status {
            if let Err(problem) = model::check_status(raw, &consent.status) {
                panic!("{problem}");
            }
        }
    }
    // Any text as a status.
    let raw = String::from_utf8_lossy(data);
    let status = ConsentStatus::from(raw.to_string());
    if let Err(problem) = model::check_status(&raw, &status) {
        panic!("{problem}");
    }
});
