//! Signed, short-lived, single-use `state` tokens for the consent redirect.
//!
//! A state token is an HS256 JWT (the algorithm is pinned: `none`, RS* and any
//! other header are refused) carrying a unique id (`jti`), the user (`sub`) and
//! its lifetime. It is bound to its consent through the consent record, which
//! stores the `jti`: Finexer assigns the consent id only after it has been given
//! the return URL that carries the token. Single use is enforced by the store's
//! conditional write on the state item.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::secrets::StateKeys;

const ISSUER: &str = "connect";
const AUDIENCE: &str = "connect-callback";
/// Why a token was refused when its `kid` is not among the keys we hold.
pub const UNKNOWN_KEY: &str = "unknown signing key";
/// Clock skew tolerated between the instance that signs and the one that verifies.
const LEEWAY_SECONDS: u64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateClaims {
    pub jti: String,
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

impl StateClaims {
    pub fn new(sub: &str, issued_at: i64, ttl_seconds: i64) -> Self {
        StateClaims {
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sub: sub.to_owned(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: issued_at,
            nbf: issued_at,
            exp: issued_at + ttl_seconds,
        }
    }
}

/// Signs with the newest key, naming it in the `kid` header.
pub fn sign(claims: &StateClaims, keys: &impl AsRef<StateKeys>) -> Result<String> {
    let key = keys.as_ref().signing_key();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(key.key.expose_secret().as_bytes()),
    )
    .map_err(|e| Error::Internal(format!("state signing failed: {e}")))
}

/// Longest key id; a key id is 1 to this many of `A-Z a-z 0-9 . _ : -`.
pub const MAX_KEY_ID_LEN: usize = 64;
/// Tokens we issue are a few hundred bytes; anything longer is not ours.
const MAX_TOKEN_LEN: usize = 2048;

/// Whether `kid` has the shape of a key id (the secret's keys are checked
/// against the same rule, so every key we hold passes it).
pub fn is_key_id(kid: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// What can be checked without a key: a token of ours is three non-empty
/// base64url parts whose header is JSON naming HS256 and a key id of the
/// right shape. Run before the keys are fetched, so that garbage in the URL
/// never makes the function call Secrets Manager. Returns the key id.
pub fn precheck(token: &str) -> Result<String> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Error::InvalidState("token too long"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let base64url = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if parts.len() != 3 || !parts.iter().all(|part| base64url(part)) {
        return Err(Error::InvalidState("malformed token"));
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| Error::InvalidState("malformed token"))?;
    if header.alg != Algorithm::HS256 {
        return Err(Error::InvalidState("unexpected algorithm"));
    }
    let kid = header
        .kid
        .ok_or(Error::InvalidState("token names no key"))?;
    if !is_key_id(&kid) {
        return Err(Error::InvalidState("malformed key id"));
    }
    Ok(kid)
}

/// Verifies shape ([`precheck`]), signature, algorithm, key id, issuer,
/// audience and lifetime.
pub fn verify(token: &str, keys: &impl AsRef<StateKeys>) -> Result<StateClaims> {
    let kid = precheck(token)?;
    let key = keys
        .as_ref()
        .verifying_key(&kid)
        .ok_or(Error::InvalidState(UNKNOWN_KEY))?;

    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "iss", "aud", "jti"]);

    jsonwebtoken::decode::<StateClaims>(
        token,
        &DecodingKey::from_secret(key.key.expose_secret().as_bytes()),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|e| {
        Error::InvalidState(match e.kind() {
            ErrorKind::ExpiredSignature => "expired",
            ErrorKind::ImmatureSignature => "not yet valid",
            ErrorKind::InvalidSignature => "bad signature",
            ErrorKind::InvalidAlgorithm => "unexpected algorithm",
            ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => "wrong issuer or audience",
            ErrorKind::MissingRequiredClaim(_) => "missing claim",
            _ => "malformed token",
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretPart;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn secrets(keys: &[(&str, &str)]) -> StateKeys {
        let keys: Vec<String> = keys
            .iter()
            .map(|(kid, key)| format!(r#"{{"kid":"{kid}","key":"{key}"}}"#))
            .collect();
        StateKeys::parse(&format!(r#"{{"state_keys":[{}]}}"#, keys.join(","))).unwrap()
    }

    const K1: &str = "key-one-key-one-key-one-key-one-key-one";
    const K2: &str = "key-two-key-two-key-two-key-two-key-two";

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn reason(result: Result<StateClaims>) -> &'static str {
        match result {
            Err(Error::InvalidState(reason)) => reason,
            other => panic!("expected an invalid state, got {other:?}"),
        }
    }

    #[test]
    fn a_fresh_token_round_trips() {
        let s = secrets(&[("k1", K1)]);
        let claims = StateClaims::new("user-1", now(), 900);
        let token = sign(&claims, &s).unwrap();
        assert_eq!(verify(&token, &s).unwrap(), claims);
    }

    #[test]
    fn every_token_has_its_own_id() {
        let a = StateClaims::new("u", now(), 900);
        let b = StateClaims::new("u", now(), 900);
        assert_ne!(a.jti, b.jti);
        assert_eq!(a.jti.len(), 32);
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_refused() {
        let s = secrets(&[("k1", K1)]);
        let expired = sign(&StateClaims::new("u", now() - 1000, 900), &s).unwrap();
        assert_eq!(reason(verify(&expired, &s)), "expired");
        let future = sign(&StateClaims::new("u", now() + 600, 900), &s).unwrap();
        assert_eq!(reason(verify(&future, &s)), "not yet valid");
    }

    #[test]
    fn rotation_old_key_verifies_until_dropped() {
        let old = secrets(&[("k1", K1)]);
        let token = sign(&StateClaims::new("u", now(), 900), &old).unwrap();
        let rotated = secrets(&[("k2", K2), ("k1", K1)]);
        assert!(verify(&token, &rotated).is_ok());
        let new_token = sign(&StateClaims::new("u", now(), 900), &rotated).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&new_token)
                .unwrap()
                .kid
                .as_deref(),
            Some("k2")
        );
        let dropped = secrets(&[("k2", K2)]);
        assert_eq!(reason(verify(&token, &dropped)), "unknown signing key");
    }

    #[test]
    fn tampering_and_foreign_keys_are_refused() {
        let s = secrets(&[("k1", K1)]);
        let token = sign(&StateClaims::new("u", now(), 900), &s).unwrap();

        // Re-signed with another key under the same kid.
        let other = secrets(&[("k1", K2)]);
        let forged = sign(&StateClaims::new("u", now(), 900), &other).unwrap();
        assert_eq!(reason(verify(&forged, &s)), "bad signature");

        // Payload swapped, signature kept.
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = "attacker".into();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(reason(verify(&tampered, &s)), "bad signature");

        // Truncated.
        assert!(verify(&token[..token.len() - 5], &s).is_err());
        assert_eq!(reason(verify("not-a-token", &s)), "malformed token");
    }

    #[test]
    fn alg_none_and_rs256_headers_are_refused() {
        let s = secrets(&[("k1", K1)]);
        let token = sign(&StateClaims::new("u", now(), 900), &s).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        for header in [
            r#"{"alg":"none","typ":"JWT","kid":"k1"}"#,
            r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#,
            r#"{"alg":"HS512","typ":"JWT","kid":"k1"}"#,
        ] {
            let forged = format!("{}.{}.", URL_SAFE_NO_PAD.encode(header), parts[1]);
            assert!(verify(&forged, &s).is_err(), "{header} accepted");
            let resigned = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                parts[1],
                parts[2]
            );
            assert!(verify(&resigned, &s).is_err(), "{header} accepted");
        }
    }

    #[test]
    fn tokens_of_the_wrong_shape_fail_the_precheck() {
        let s = secrets(&[("k1", K1)]);
        let token = sign(&StateClaims::new("u", now(), 900), &s).unwrap();
        assert_eq!(precheck(&token).unwrap(), "k1");
        let parts: Vec<&str> = token.split('.').collect();
        let header = |json: &str| URL_SAFE_NO_PAD.encode(json);
        let with_header = |h: String| format!("{h}.{}.{}", parts[1], parts[2]);
        let cases = [
            ("\0\0\0".to_string(), "malformed token"),
            ("".into(), "malformed token"),
            ("a.b".into(), "malformed token"),
            (format!("{token}.x"), "malformed token"),
            (format!("{}..{}", parts[0], parts[2]), "malformed token"),
            (format!("{}.{}.", parts[0], parts[1]), "malformed token"),
            (
                format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
                "malformed token",
            ),
            (
                format!("{} .{}.{}", parts[0], parts[1], parts[2]),
                "malformed token",
            ),
            (with_header(header("not json")), "malformed token"),
            (
                with_header(header(r#"{"alg":"HS512","kid":"k1"}"#)),
                "unexpected algorithm",
            ),
            (
                with_header(header(r#"{"alg":"HS256"}"#)),
                "token names no key",
            ),
            (
                with_header(header(r#"{"alg":"HS256","kid":""}"#)),
                "malformed key id",
            ),
            (
                with_header(header(r#"{"alg":"HS256","kid":"k 1"}"#)),
                "malformed key id",
            ),
            (
                with_header(header(&format!(
                    r#"{{"alg":"HS256","kid":"{}"}}"#,
                    "k".repeat(65)
                ))),
                "malformed key id",
            ),
            ("a".repeat(3000), "token too long"),
        ];
        for (token, expected) in cases {
            assert_eq!(
                reason(precheck(&token).map(|_| claims())),
                expected,
                "{token:?}"
            );
        }
        assert!(is_key_id("2026-11") && is_key_id("initial") && is_key_id(&"k".repeat(64)));
    }

    fn claims() -> StateClaims {
        StateClaims::new("u", now(), 900)
    }

    #[test]
    fn a_token_without_key_id_is_refused() {
        let s = secrets(&[("k1", K1)]);
        let claims = StateClaims::new("u", now(), 900);
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(K1.as_bytes()),
        )
        .unwrap();
        assert_eq!(reason(verify(&token, &s)), "token names no key");
    }
}
