//! State-token verification: never a panic, and nothing verifies but the
//! genuine token itself or one correctly signed with our key (whose claims
//! must then be valid).
#![no_main]

use std::sync::OnceLock;

use connect_fuzz::{b64, harness, model};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::state;

fn genuine() -> &'static (String, [String; 3]) {
    static GENUINE: OnceLock<(String, [String; 3])> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let token = model::token("jti-fuzz", model::KEY_NEW);
        let parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let parts: [String; 3] = parts.try_into().expect("three segments");
        (token, parts)
    })
}

fn hs256(message: &str, key: &str) -> String {
    jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(key.as_bytes()),
        Algorithm::HS256,
    )
    .expect("HMAC signing")
}

/// Only the genuine token may verify.
fn only_genuine(candidate: &str) {
    let (token, _) = genuine();
    if state::verify(candidate, &harness().secrets).is_ok() {
        assert_eq!(candidate, token, "a changed token verified");
    }
}

/// A token signed with our key verifies only with valid claims and an
/// HS256 header naming that key.
fn sound(candidate: &str) {
    let Ok(claims) = state::verify(candidate, &harness().secrets) else {
        return;
    };
    assert_eq!(claims.iss, model::ISSUER);
    assert_eq!(claims.aud, model::AUDIENCE);
    let now = time_now();
    assert!(claims.exp + 5 >= now, "expired claims accepted: {claims:?}");
    assert!(
        claims.nbf - 5 <= now,
        "immature claims accepted: {claims:?}"
    );
    let header = jsonwebtoken::decode_header(candidate).expect("verified, so decodable");
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.kid.as_deref(), Some(model::KEY_NEW.0));
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (token, [header, payload, signature]) = genuine();
    match mode % 8 {
        // Any text.
        0 => only_genuine(&String::from_utf8_lossy(rest)),
        // The genuine token with bytes overwritten: (position, byte) pairs.
        1 => {
            let mut bytes = token.as_bytes().to_vec();
            for edit in rest.chunks_exact(2) {
                let at = usize::from(edit[0]) * bytes.len() / 256;
                bytes[at] = edit[1];
            }
            if let Ok(text) = String::from_utf8(bytes) {
                only_genuine(&text);
            }
        }
        // The genuine token cut at any length, then `rest` appended.
        2 => {
            let cut = rest
                .first()
                .map_or(0, |&b| usize::from(b) * token.len() / 255);
            let tail = String::from_utf8_lossy(rest.get(1..).unwrap_or_default());
            only_genuine(&format!("{}{tail}", &token[..cut]));
        }
        // One segment replaced by `rest`, base64url-encoded.
        3 => only_genuine(&format!("{}.{payload}.{signature}", b64(rest))),
        4 => only_genuine(&format!("{header}.{}.{signature}", b64(rest))),
        5 => only_genuine(&format!("{header}.{payload}.{}", b64(rest))),
        // Claims (any JSON) correctly signed with our key: verifies only when
        // they are valid.
        6 => {
            if let Ok(claims) = serde_json::from_slice::<Value>(rest) {
                let message = format!(
                    "{header}.{}",
                    b64(serde_json::to_string(&claims).unwrap().as_bytes())
                );
                sound(&format!("{message}.{}", hs256(&message, model::KEY_NEW.1)));
            }
        }
        // Any header bytes, signed with our key over the genuine payload.
        _ => {
            let message = format!("{}.{payload}", b64(rest));
            sound(&format!("{message}.{}", hs256(&message, model::KEY_NEW.1)));
        }
    }
});
