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

/// Longest user id accepted; ids are embedded in storage keys.
const MAX_SUB_LEN: usize = 256;

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
            .map(|s| s.trim())
            .filter(|s| !s.is_empty() && s.len() <= MAX_SUB_LEN)
            .filter(|s| !s.chars().any(char::is_control))
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
