//! Which route of the HTTP API a method and path reach, as API Gateway
//! matches them: the route key (`POST /consents/{id}/revoke`), the path
//! parameters it fills, and whether the JWT authorizer guards it.
//!
//! `lookup` is the one place the kit reads the route table
//! (`shared::routes`) from.

use std::collections::HashMap;

/// A matched route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// `METHOD /template`, as API Gateway's `routeKey`.
    pub key: String,
    /// The template's `{name}` segments, filled from the path (as sent).
    pub path_parameters: HashMap<String, String>,
    /// Whether the route sits behind the JWT authorizer.
    pub authorized: bool,
}

/// The route `method` `path` reaches in the route table (`shared::routes`),
/// or None (API Gateway's `$default`).
pub fn lookup(method: &str, path: &str) -> Option<RouteMatch> {
    let (route, parameters) = shared::routes::Route::find(method, path)?;
    Some(RouteMatch {
        key: route.key.to_owned(),
        path_parameters: parameters
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
        authorized: route.is_authorized(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_their_parameters() {
        let revoke = lookup("POST", "/consents/bc_1/revoke").unwrap();
        assert_eq!(revoke.key, "POST /consents/{id}/revoke");
        assert_eq!(revoke.path_parameters["id"], "bc_1");
        assert!(revoke.authorized);
        let confirm = lookup("POST", "/consents/bc_1/confirm").unwrap();
        assert_eq!(confirm.key, "POST /consents/{id}/confirm");
        assert_eq!(confirm.path_parameters["id"], "bc_1");
        let links = lookup("POST", "/links").unwrap();
        assert_eq!(links.key, "POST /links");
        assert!(links.path_parameters.is_empty());
        let callback = lookup("GET", "/callback").unwrap();
        assert!(callback.path_parameters.is_empty());
        assert!(!callback.authorized);
    }

    #[test]
    fn other_methods_paths_and_empty_segments_match_nothing() {
        assert_eq!(lookup("GET", "/links"), None);
        assert_eq!(lookup("POST", "/consents//revoke"), None);
        assert_eq!(lookup("GET", "/consents/a/b"), None);
    }
}
