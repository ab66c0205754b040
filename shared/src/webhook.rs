//! Finexer's webhook signature (docs/finexer-api.md, Webhooks): the header
//! `fx-signature: t=<ISO-8601 UTC>;s=<hex>`, where `s` is HMAC-SHA256 over
//! `"<t>." + raw body` with the webhook's signing secret.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const SIGNATURE_HEADER: &str = "fx-signature";
/// How far a signature's timestamp may be from now, either way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// Longer headers are refused unread: a real one is about 100 bytes.
const MAX_HEADER_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Not `t=<ISO-8601>;s=<64 hex digits>`.
    #[error("malformed fx-signature header: {0}")]
    Malformed(&'static str),
    /// No secret gives this signature over `"<t>." + body`.
    #[error("fx-signature does not match the body")]
    Mismatch,
    /// Signed correctly, but `t` is further from now than the tolerance
    /// (a replay, or a clock far off).
    #[error("fx-signature timestamp is {seconds} s away from now")]
    Stale { seconds: i64 },
}

/// Checks `header` (the `fx-signature` value) against the raw `body` under
/// each of `secrets` (several while one is rotated out), in constant time.
/// The signature is checked before the timestamp, so a stale but genuine
/// event reads [`WebhookError::Stale`], not [`WebhookError::Mismatch`].
pub fn verify_signature(
    header: &str,
    body: &[u8],
    secrets: &[&[u8]],
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(WebhookError::Malformed("longer than 1 KiB"));
    }
    // Exactly `t=...;s=...`: a header with other fields or in another order
    // is not one Finexer sends, so it is refused rather than interpreted.
    let (t_part, s_part) = header
        .trim()
        .split_once(';')
        .ok_or(WebhookError::Malformed("not t=<time>;s=<signature>"))?;
    let timestamp = t_part
        .strip_prefix("t=")
        .ok_or(WebhookError::Malformed("t= does not come first"))?;
    let signature = s_part
        .strip_prefix("s=")
        .ok_or(WebhookError::Malformed("s= does not come second"))?;
    let signature =
        decode_hex(signature).ok_or(WebhookError::Malformed("s is not 64 hex digits"))?;
    let signed_at = OffsetDateTime::parse(timestamp, &Rfc3339)
        .map_err(|_| WebhookError::Malformed("t is not an ISO-8601 time"))?;

    let genuine = secrets.iter().any(|secret| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        // The timestamp exactly as sent: re-formatting it could change the bytes.
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    });
    if !genuine {
        return Err(WebhookError::Mismatch);
    }
    let seconds = (now - signed_at).whole_seconds();
    if seconds.unsigned_abs() > tolerance.as_secs() {
        return Err(WebhookError::Stale { seconds });
    }
    Ok(())
}

/// 32 bytes from 64 hex digits (either case).
fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = (high * 16 + low) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use finexer_sandbox::clock::Timestamp;
    use finexer_sandbox::webhooks::signature_header;

    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"consent.canceled"}"#;

    /// Signed by the sandbox's own signer, so the two cannot drift apart.
    fn signed_now(secret: &str) -> (String, OffsetDateTime) {
        let at = Timestamp::now().to_string();
        let now = OffsetDateTime::parse(&at, &Rfc3339).unwrap();
        (signature_header(secret, &at, BODY), now)
    }

    #[test]
    fn the_sandboxs_signature_verifies() {
        let (header, now) = signed_now("whsec_test");
        assert_eq!(
            verify_signature(&header, BODY, &[b"whsec_test"], now, DEFAULT_TOLERANCE),
            Ok(())
        );
        // Rotation: any listed secret will do.
        assert_eq!(
            verify_signature(
                &header,
                BODY,
                &[b"whsec_new", b"whsec_test"],
                now,
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn another_body_or_secret_is_a_mismatch() {
        let (header, now) = signed_now("whsec_test");
        let mut tampered = BODY.to_vec();
        tampered[2] ^= 1;
        for (body, secrets) in [
            (&tampered[..], &[&b"whsec_test"[..]][..]),
            (BODY, &[&b"whsec_other"[..]][..]),
            (BODY, &[][..]),
            (&BODY[..BODY.len() - 1], &[&b"whsec_test"[..]][..]),
        ] {
            assert_eq!(
                verify_signature(&header, body, secrets, now, DEFAULT_TOLERANCE),
                Err(WebhookError::Mismatch)
            );
        }
        // The timestamp is signed too: a fresh `t` on an old signature fails.
        let (_, signature) = header.split_once(";s=").unwrap();
        let moved = format!("t=2030-01-01T00:00:00Z;s={signature}");
        assert_eq!(
            verify_signature(&moved, BODY, &[b"whsec_test"], now, DEFAULT_TOLERANCE),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn a_genuine_signature_outside_the_tolerance_is_stale() {
        let (header, now) = signed_now("whsec_test");
        let late = now + time::Duration::minutes(6);
        assert_eq!(
            verify_signature(&header, BODY, &[b"whsec_test"], late, DEFAULT_TOLERANCE),
            Err(WebhookError::Stale { seconds: 360 })
        );
        let early = now - time::Duration::minutes(6);
        assert_eq!(
            verify_signature(&header, BODY, &[b"whsec_test"], early, DEFAULT_TOLERANCE),
            Err(WebhookError::Stale { seconds: -360 })
        );
        let edge = now + time::Duration::minutes(5);
        assert_eq!(
            verify_signature(&header, BODY, &[b"whsec_test"], edge, DEFAULT_TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let (header, now) = signed_now("whsec_test");
        let (t, s) = header.split_once(';').unwrap();
        let upper = format!("{t};{}", s.to_ascii_uppercase().replacen("S=", "s=", 1));
        assert_eq!(
            verify_signature(&upper, BODY, &[b"whsec_test"], now, DEFAULT_TOLERANCE),
            Ok(()),
            "hex digits in either case"
        );
        for bad in [
            format!("{s};{t}"),
            format!(" {t} ; {s} "),
            format!("{t};{s};v=1"),
            format!("v=1;{t};{s}"),
            String::new(),
            t.to_owned(),
            s.to_owned(),
            format!("{t};s=abc"),
            format!("{t};s={}", "zz".repeat(32)),
            format!("t=yesterday;{s}"),
            format!("t=1767225600;{s}"),
            format!("{t};{t};{s}"),
            format!("{t};{s};junk"),
            format!("{t};{s};x={}", "a".repeat(2000)),
        ] {
            assert!(
                matches!(
                    verify_signature(&bad, BODY, &[b"whsec_test"], now, DEFAULT_TOLERANCE),
                    Err(WebhookError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }
}
