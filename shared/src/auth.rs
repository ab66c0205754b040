//! The caller's identity, as the API Gateway JWT authorizer validated it.
//! It is read from the request context only, never from the body.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The platform's user id (`sub`).
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// Longest user id accepted (bytes); ids are embedded in storage keys.
const MAX_SUB_LEN: usize = 256;

/// Whether `sub` is usable as given. It is never normalised: `"alice "` or
/// `"alice\u{a0}"` trimmed would be alice, so a token for either could read
/// her consents. Anything that would need trimming or cleaning is refused.
fn is_user_id(sub: &str) -> bool {
    !sub.is_empty()
        && sub.len() <= MAX_SUB_LEN
        && !sub.starts_with(char::is_whitespace)
        && !sub.ends_with(char::is_whitespace)
        && !sub.chars().any(char::is_control)
}

impl Caller {
    pub fn from_request(request: &Request) -> Result<Caller> {
        let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
            return Err(Error::Unauthorized);
        };
        let claims = context
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|jwt| &jwt.claims)
            .ok_or(Error::Unauthorized)?;
        let user_id = claims
            .get("sub")
            .filter(|sub| is_user_id(sub))
            .ok_or(Error::Unauthorized)?;
        let optional = |name: &str| {
            claims
                .get(name)
                .map(|v| v.trim().chars().take(200).collect::<String>())
                .filter(|v| !v.is_empty())
        };
        Ok(Caller {
            user_id: user_id.to_owned(),
            email: optional("email"),
            name: optional("name"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_user_id;

    #[test]
    fn user_ids_are_taken_as_given_or_refused() {
        for good in ["alice", "auth0|5f7c", "a b", "é", &"a".repeat(256)] {
            assert!(is_user_id(good), "{good:?}");
        }
        for bad in [
            "",
            " ",
            "alice ",
            " alice",
            "alice\u{a0}",
            "\u{2003}alice",
            "alice\n",
            "al\u{0}ice",
            "al\u{7f}ice",
            "ali\u{85}ce",
            &"a".repeat(257),
            &"é".repeat(129),
        ] {
            assert!(!is_user_id(bad), "{bad:?}");
        }
    }
}
