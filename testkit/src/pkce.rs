//! What a frontend holds for a link created with a `code_challenge`
//! (RFC 7636, S256), and the one-time code the callback's redirect carries
//! in its fragment.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A verifier as a tab makes one, distinct for each `seed`: 45 of RFC 7636's
/// unreserved characters, `.` and `~` among them.
pub fn verifier(seed: &str) -> String {
    let random = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("verifier:{seed}")));
    format!("{random}.~")
}

/// Its S256 challenge: base64url (no padding) of its SHA-256.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The `code` in a return URL's fragment (`#code=…`), if it has one.
pub fn fragment_code(url: &url::Url) -> Option<String> {
    let fragment = url.fragment()?;
    url::form_urlencoded::parse(fragment.as_bytes())
        .find(|(name, _)| name == "code")
        .map(|(_, code)| code.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636_s256() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let verifier = verifier("a");
        assert_eq!(verifier.len(), 45);
        assert_ne!(verifier, super::verifier("b"));
        assert_eq!(challenge(&verifier).len(), 43);
    }

    #[test]
    fn the_code_is_read_from_the_fragment_only() {
        let url = url::Url::parse("https://app.example/r?code=q&status=authorized#code=f").unwrap();
        assert_eq!(fragment_code(&url).as_deref(), Some("f"));
        let url = url::Url::parse("https://app.example/r?code=q").unwrap();
        assert_eq!(fragment_code(&url), None);
    }
}
