//! Binds a state token to the browser that started the journey (RFC 9700
//! §2.1): create-link sets a random value in a `__Host-` cookie and puts its
//! hash in the state; the callback compares them. A present but different
//! cookie is always refused. A missing one is refused only under
//! `BROWSER_BINDING=require`: bank apps may open the return URL in another
//! browser, and a cookie set by a cross-site API call may be blocked as a
//! third-party cookie, so the default tolerates its absence.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::Request;
use sha2::{Digest, Sha256};

use crate::config::BrowserBinding;
use crate::error::{Error, Result};

pub const COOKIE_NAME: &str = "__Host-fx_bind";

/// A fresh binding: the cookie value and the hash that goes into the state.
pub fn new_binding() -> (String, String) {
    let value = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = hash(&value);
    (value, hash)
}

fn hash(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

pub fn set_cookie(value: &str, max_age_seconds: u64) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/; Max-Age={max_age_seconds}; Secure; HttpOnly; SameSite=Lax"
    )
}

pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax")
}

/// The binding cookie's value, if the browser sent one.
pub fn cookie(request: &Request) -> Option<String> {
    request
        .headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
}

/// Checks the cookie against the hash the state carries.
pub fn check(
    expected_hash: Option<&str>,
    cookie: Option<&str>,
    policy: BrowserBinding,
) -> Result<()> {
    let Some(expected) = expected_hash else {
        return Ok(());
    };
    match cookie {
        Some(value) if hash(value) == expected => Ok(()),
        Some(_) => Err(Error::InvalidState("browser binding cookie does not match")),
        None if policy == BrowserBinding::Require => {
            Err(Error::InvalidState("browser binding cookie missing"))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matching_cookie_passes_and_any_other_fails() {
        let (value, hash) = new_binding();
        let (other, _) = new_binding();
        for policy in [BrowserBinding::Tolerate, BrowserBinding::Require] {
            assert!(check(Some(&hash), Some(&value), policy).is_ok());
            assert!(check(Some(&hash), Some(&other), policy).is_err());
            assert!(check(Some(&hash), Some(""), policy).is_err());
        }
    }

    #[test]
    fn a_missing_cookie_depends_on_the_policy() {
        let (_, hash) = new_binding();
        assert!(check(Some(&hash), None, BrowserBinding::Tolerate).is_ok());
        assert!(check(Some(&hash), None, BrowserBinding::Require).is_err());
        assert!(
            check(None, None, BrowserBinding::Require).is_ok(),
            "unbound state"
        );
    }

    #[test]
    fn the_cookie_is_host_only_secure_and_http_only() {
        let header = set_cookie("v", 900);
        assert!(header.starts_with("__Host-fx_bind=v; Path=/;"));
        for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Max-Age=900"] {
            assert!(header.contains(attribute), "{attribute}");
        }
        assert!(
            !header.contains("Domain"),
            "__Host- cookies carry no Domain"
        );
    }
}
