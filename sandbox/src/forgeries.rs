//! Webhook deliveries that must be refused, for the tests of a receiver: one
//! list, so every test of every layer checks the same cases.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::webhooks::signature_header;

/// A delivery: what it is, its `fx-signature` (None: no header), its body.
pub type Delivery = (&'static str, Option<String>, Vec<u8>);

/// `fx-signature` for `body` as signed at `at` with `secret`.
pub fn signed_at(secret: &str, at: OffsetDateTime, body: &[u8]) -> String {
    let at = at.format(&Rfc3339).unwrap_or_default();
    signature_header(secret, &at, body)
}

/// Every way a delivery of `body` can fail to prove it comes from the holder
/// of `secret` now: forged, another secret, stale or early by 6 minutes, no
/// header, a body changed after signing, extra or reordered fields.
pub fn forgeries(secret: &str, body: &[u8]) -> Vec<Delivery> {
    let now = OffsetDateTime::now_utc();
    let six_minutes = time::Duration::minutes(6);
    let good = signed_at(secret, now, body);
    let (t, s) = good.split_once(';').unwrap_or_default();
    let mut changed = body.to_vec();
    if let Some(last) = changed.iter_mut().rev().find(|b| b.is_ascii_alphanumeric()) {
        *last = if *last == b'x' { b'y' } else { b'x' };
    }
    let with = |header: String| Some(header);
    vec![
        (
            "forged",
            with(format!("{t};s={}", "ab".repeat(32))),
            body.to_vec(),
        ),
        (
            "another secret",
            with(signed_at("whsec_not_ours", now, body)),
            body.to_vec(),
        ),
        (
            "6 minutes old",
            with(signed_at(secret, now - six_minutes, body)),
            body.to_vec(),
        ),
        (
            "6 minutes ahead",
            with(signed_at(secret, now + six_minutes, body)),
            body.to_vec(),
        ),
        ("no header", None, body.to_vec()),
        ("empty header", with(String::new()), body.to_vec()),
        ("body changed after signing", with(good.clone()), changed),
        ("extra field", with(format!("{good};v=1")), body.to_vec()),
        ("reordered fields", with(format!("{s};{t}")), body.to_vec()),
    ]
}
