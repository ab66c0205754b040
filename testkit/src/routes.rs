//! Which route of the HTTP API a method and path reach, as API Gateway
//! matches them: the route key (`POST /consents/{id}/revoke`), the path
//! parameters it fills, and whether the JWT authorizer guards it.
//!
//! `lookup` is the one place the kit reads the route table from.

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

/// The deployed HTTP API's routes: method, template, authorized.
// Switches to `shared::routes` once the route table lives there.
const ROUTES: &[(&str, &str, bool)] = &[
    ("POST", "/links", true),
    ("GET", "/callback", false),
    ("POST", "/consents/{id}/confirm", true),
    ("POST", "/consents/{id}/reconfirm", true),
    ("POST", "/consents/{id}/revoke", true),
    ("GET", "/consents", true),
    ("GET", "/consents/{id}", true),
    ("GET", "/consents/{id}/accounts", true),
    ("GET", "/accounts", true),
    ("POST", "/webhooks/finexer", false),
];

/// The route `method` `path` reaches, or None (API Gateway's `$default`).
pub fn lookup(method: &str, path: &str) -> Option<RouteMatch> {
    ROUTES
        .iter()
        .find_map(|(route_method, template, authorized)| {
            if !route_method.eq_ignore_ascii_case(method) {
                return None;
            }
            let path_parameters = match_template(template, path)?;
            Some(RouteMatch {
                key: format!("{route_method} {template}"),
                path_parameters,
                authorized: *authorized,
            })
        })
}

/// The parameters `path` fills in `template`, or None when it does not fit.
/// A `{name}` takes exactly one non-empty segment.
fn match_template(template: &str, path: &str) -> Option<HashMap<String, String>> {
    let wanted: Vec<&str> = template.split('/').skip(1).collect();
    let given: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    if wanted.len() != given.len() {
        return None;
    }
    let mut parameters = HashMap::new();
    for (want, got) in wanted.iter().zip(&given) {
        match want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            Some(name) if !got.is_empty() => {
                parameters.insert(name.to_owned(), (*got).to_owned());
            }
            Some(_) => return None,
            None if want == got => {}
            None => return None,
        }
    }
    Some(parameters)
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
        let callback = lookup("GET", "/callback").unwrap();
        assert!(callback.path_parameters.is_empty());
        assert!(!callback.authorized);
    }

    #[test]
    fn other_methods_paths_and_empty_segments_match_nothing() {
        assert_eq!(lookup("GET", "/links"), None);
        assert_eq!(lookup("POST", "/consents//revoke"), None);
        assert_eq!(lookup("GET", "/consents/a/b"), None);
        assert_eq!(lookup("GET", "consents"), None);
        assert_eq!(lookup("GET", "/consents/"), None);
    }
}
