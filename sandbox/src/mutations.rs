//! A sandbox that differs from `docs/finexer-api.md` on purpose, for the
//! contract check's own test: consent answers with fields renamed and statuses
//! replaced, set through `/_sandbox/mutations`. Off unless set.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::SandboxState;

/// Answers larger than this are passed on unchanged.
const MAX_MUTATED_BODY: usize = 1024 * 1024;

/// As JSON: `{"rename_fields": {"redirect.consent_url": "redirect.url"},
/// "replace_statuses": {"canceled": "revoked"}}`; both optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mutations {
    /// Dotted field paths of a consent object, moved to another path.
    pub rename_fields: BTreeMap<String, String>,
    /// A consent status the sandbox no longer answers, and what it says instead.
    pub replace_statuses: BTreeMap<String, String>,
}

impl Mutations {
    pub fn is_empty(&self) -> bool {
        self.rename_fields.is_empty() && self.replace_statuses.is_empty()
    }

    /// Applies to every consent object in `value` (an answer or a list of them).
    pub fn apply(&self, value: &mut Value) {
        match value {
            Value::Object(object) => {
                if object.get("object").and_then(Value::as_str) == Some("consent") {
                    self.apply_to_consent(object);
                } else {
                    object.values_mut().for_each(|v| self.apply(v));
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.apply(v)),
            _ => {}
        }
    }

    fn apply_to_consent(&self, consent: &mut Map<String, Value>) {
        if let Some(Value::String(status)) = consent.get_mut("status")
            && let Some(instead) = self.replace_statuses.get(status.as_str())
        {
            *status = instead.clone();
        }
        for (from, to) in &self.rename_fields {
            if let Some(moved) = take_path(consent, from) {
                put_path(consent, to, moved);
            }
        }
    }
}

fn take_path(object: &mut Map<String, Value>, path: &str) -> Option<Value> {
    match path.split_once('.') {
        None => object.remove(path),
        Some((head, rest)) => take_path(object.get_mut(head)?.as_object_mut()?, rest),
    }
}

fn put_path(object: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            object.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = object
                .entry(head)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(child) = child {
                put_path(child, rest, value);
            }
        }
    }
}

#[derive(Default)]
pub struct MutationSwitch(Mutex<Mutations>);

impl MutationSwitch {
    pub fn get(&self) -> Mutations {
        self.lock().clone()
    }

    pub fn set(&self, mutations: Mutations) {
        *self.lock() = mutations;
    }

    fn lock(&self) -> MutexGuard<'_, Mutations> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Middleware: rewrites JSON API answers while mutations are set.
pub async fn mutate_answers(
    State(state): State<SandboxState>,
    request: Request,
    next: Next,
) -> Response {
    let admin = request.uri().path().starts_with(crate::admin::ADMIN_PREFIX);
    let mutations = state.mutations.get();
    let response = next.run(request).await;
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if admin || !json || mutations.is_empty() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_MUTATED_BODY).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    mutations.apply(&mut value);
    let body = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renames_and_replaces_in_consents_only() {
        let mutations = Mutations {
            rename_fields: [("redirect.consent_url".into(), "redirect.url".into())].into(),
            replace_statuses: [("canceled".into(), "revoked".into())].into(),
        };
        let mut list = json!({"data": [
            {"object": "consent", "status": "canceled", "redirect": {"consent_url": "u", "return_url": "r"}},
            {"object": "customer", "status": "canceled", "redirect": {"consent_url": "u"}}
        ]});
        mutations.apply(&mut list);
        assert_eq!(
            list,
            json!({"data": [
                {"object": "consent", "status": "revoked", "redirect": {"url": "u", "return_url": "r"}},
                {"object": "customer", "status": "canceled", "redirect": {"consent_url": "u"}}
            ]})
        );
    }
}
