//! Reading parameters the way Finexer encodes them, from a query string or an
//! `application/x-www-form-urlencoded` body: scalars as `name=value`, arrays as
//! `name[]=a&name[]=b`, maps as `name[key]=value`.
//!
//! Handlers take parameters out one by one and finally call `finish`, which
//! rejects anything left over. Unknown parameters are answered 400 so a client
//! that misspells a field or drops the `[]` finds out here, not in production.

use std::collections::BTreeMap;

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use url::form_urlencoded;

use super::error::{ApiError, ApiResult};

/// Largest form body accepted; Finexer's requests are a few hundred bytes.
const MAX_FORM_BYTES: usize = 64 * 1024;
const MAX_METADATA_KEYS: usize = 50;
const MAX_METADATA_KEY_LEN: usize = 40;
const MAX_METADATA_VALUE_LEN: usize = 500;

#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(encoded: &[u8]) -> Self {
        Self {
            pairs: form_urlencoded::parse(encoded).into_owned().collect(),
        }
    }

    /// A single-valued parameter; an empty value counts as absent.
    pub fn optional(&mut self, name: &str) -> ApiResult<Option<String>> {
        let mut values = self.take(|key| key == name);
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop().filter(|value| !value.is_empty())),
            _ => Err(ApiError::invalid_parameter(name, "given more than once")),
        }
    }

    pub fn required(&mut self, name: &str) -> ApiResult<String> {
        self.optional(name)?
            .ok_or_else(|| ApiError::missing_parameter(name))
    }

    /// `true`/`false`; anything else is a 400.
    pub fn optional_bool(&mut self, name: &str) -> ApiResult<Option<bool>> {
        match self.optional(name)?.as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid_parameter(name, "expected true or false")),
        }
    }

    pub fn optional_number(&mut self, name: &str) -> ApiResult<Option<usize>> {
        self.optional(name)?
            .map(|text| {
                text.parse::<usize>().map_err(|_| {
                    ApiError::invalid_parameter(name, "expected a non-negative integer")
                })
            })
            .transpose()
    }

    /// The values of `name[]=...`, in the order given.
    pub fn list(&mut self, name: &str) -> Vec<String> {
        let array_key = format!("{name}[]");
        self.take(|key| key == array_key)
    }

    /// The entries of `name[key]=value`.
    pub fn map(&mut self, name: &str) -> ApiResult<BTreeMap<String, String>> {
        let prefix = format!("{name}[");
        let mut entries = BTreeMap::new();
        let mut remaining = Vec::with_capacity(self.pairs.len());
        for (key, value) in std::mem::take(&mut self.pairs) {
            let Some(inner) = key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(']'))
            else {
                remaining.push((key, value));
                continue;
            };
            if inner.is_empty() || inner.contains(['[', ']']) || inner.len() > MAX_METADATA_KEY_LEN
            {
                return Err(ApiError::invalid_parameter(
                    &key,
                    &format!("keys must be 1-{MAX_METADATA_KEY_LEN} characters without brackets"),
                ));
            }
            if value.len() > MAX_METADATA_VALUE_LEN {
                return Err(ApiError::invalid_parameter(
                    &key,
                    &format!("values are limited to {MAX_METADATA_VALUE_LEN} characters"),
                ));
            }
            entries.insert(inner.to_owned(), value);
        }
        self.pairs = remaining;
        if entries.len() > MAX_METADATA_KEYS {
            return Err(ApiError::invalid_parameter(
                name,
                &format!("at most {MAX_METADATA_KEYS} keys"),
            ));
        }
        Ok(entries)
    }

    /// Rejects whatever the handler did not ask for.
    pub fn finish(self) -> ApiResult<()> {
        match self.pairs.first() {
            None => Ok(()),
            Some((key, _)) => Err(ApiError::bad_request(
                "parameter_unknown",
                format!("Received unknown parameter: {key}."),
            )),
        }
    }

    fn take(&mut self, matches: impl Fn(&str) -> bool) -> Vec<String> {
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(key, _)| matches(key));
        self.pairs = kept;
        taken.into_iter().map(|(_, value)| value).collect()
    }
}

/// The query string of a request.
pub struct QueryParams(pub Params);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(Self(Params::parse(query.as_bytes())))
    }
}

/// A POST body, which Finexer wants form-encoded; JSON and other types are a 400.
pub struct FormParams(pub Params);

impl<S: Send + Sync> FromRequest<S> for FormParams {
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        let body = to_bytes(request.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                ApiError::bad_request("body_too_large", "The request body is too large.")
            })?;
        match content_type.as_deref() {
            Some("application/x-www-form-urlencoded") => Ok(Self(Params::parse(&body))),
            // A body-less POST (revoke, sync) needs no content type.
            None if body.is_empty() => Ok(Self(Params::default())),
            other => Err(ApiError::bad_request(
                "unsupported_content_type",
                format!(
                    "Request bodies must be application/x-www-form-urlencoded (got {}).",
                    other.unwrap_or("no content type")
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scalars_arrays_and_maps() {
        let mut params = Params::parse(
            b"customer=cus_1&scopes[]=accounts&scopes%5B%5D=balance&metadata[order]=42&metadata%5Bref%5D=a%26b",
        );
        assert_eq!(
            params.optional("customer").unwrap().as_deref(),
            Some("cus_1")
        );
        assert_eq!(params.list("scopes"), ["accounts", "balance"]);
        let metadata = params.map("metadata").unwrap();
        assert_eq!(metadata["order"], "42");
        assert_eq!(metadata["ref"], "a&b");
        assert!(params.finish().is_ok());
    }

    #[test]
    fn leftovers_and_repeats_are_rejected() {
        let mut params = Params::parse(b"scopes=accounts");
        assert!(params.list("scopes").is_empty());
        assert_eq!(params.finish().unwrap_err().code, "parameter_unknown");

        let mut params = Params::parse(b"customer=a&customer=b");
        assert_eq!(
            params.optional("customer").unwrap_err().code,
            "parameter_invalid"
        );
    }
}
