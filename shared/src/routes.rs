//! The functions and the HTTP routes that reach them: the one list. The
//! local gateway builds its routes from it, the handlers name their routes
//! by it, the sample events and test events take their `routeKey` and
//! `pathParameters` from it, and the infra check compares the template with
//! it (`cargo run -q -p connect-local --bin routes` prints it as JSON).
//!
//! A route is written as API Gateway writes its route key:
//! `POST /consents/{id}/revoke`. The scheduled reconciler is a function
//! without routes.

use lambda_http::{Request, RequestExt};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// The functions, one Lambda binary each, by the name their crate, their
/// metrics' `Function` dimension and the template give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    CreateLink,
    Callback,
    Confirm,
    Revoke,
    Consents,
    Webhook,
    Reconcile,
}

impl Function {
    pub const ALL: [Function; 7] = [
        Function::CreateLink,
        Function::Callback,
        Function::Confirm,
        Function::Revoke,
        Function::Consents,
        Function::Webhook,
        Function::Reconcile,
    ];

    /// The crate's name under `functions/`, the `Function` metric dimension.
    pub fn name(self) -> &'static str {
        match self {
            Function::CreateLink => "create-link",
            Function::Callback => "callback",
            Function::Confirm => "confirm",
            Function::Revoke => "revoke",
            Function::Consents => "consents",
            Function::Webhook => "webhook",
            Function::Reconcile => "reconcile",
        }
    }

    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Its handler, `shared::handlers::<handler>`, the one its main.rs runs
    /// and [`crate::handlers::dispatch`] calls.
    pub fn handler(self) -> &'static str {
        match self {
            Function::CreateLink => "create_link",
            Function::Callback => "callback",
            Function::Confirm => "confirm",
            Function::Revoke => "revoke",
            Function::Consents => "consents",
            Function::Webhook => "webhook",
            Function::Reconcile => "reconcile",
        }
    }

    /// The routes that reach it; none for the scheduled reconciler.
    pub fn routes(self) -> impl Iterator<Item = &'static Route> {
        ROUTES.iter().filter(move |route| route.function == self)
    }

    /// Started by a schedule, not by HTTP.
    pub fn is_scheduled(self) -> bool {
        self.routes().next().is_none()
    }
}

impl std::fmt::Display for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Behind the JWT authorizer: the handler reads the caller's claims.
    Authorized,
    /// Anybody: the bank's redirect (callback), Finexer's signed webhook.
    Public,
}

/// One route of the HTTP API.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    /// API Gateway's route key: `METHOD /path/{param}`.
    pub key: &'static str,
    pub function: Function,
    pub access: Access,
}

const fn route(key: &'static str, function: Function, access: Access) -> Route {
    Route {
        key,
        function,
        access,
    }
}

pub const CREATE_LINK: Route = route("POST /links", Function::CreateLink, Access::Authorized);
pub const CALLBACK: Route = route("GET /callback", Function::Callback, Access::Public);
pub const CONFIRM: Route = route(
    "POST /consents/{id}/confirm",
    Function::Confirm,
    Access::Authorized,
);
pub const RECONFIRM: Route = route(
    "POST /consents/{id}/reconfirm",
    Function::Confirm,
    Access::Authorized,
);
pub const REVOKE: Route = route(
    "POST /consents/{id}/revoke",
    Function::Revoke,
    Access::Authorized,
);
pub const LIST_CONSENTS: Route = route("GET /consents", Function::Consents, Access::Authorized);
pub const ONE_CONSENT: Route = route("GET /consents/{id}", Function::Consents, Access::Authorized);
pub const CONSENT_ACCOUNTS: Route = route(
    "GET /consents/{id}/accounts",
    Function::Consents,
    Access::Authorized,
);
pub const ALL_ACCOUNTS: Route = route("GET /accounts", Function::Consents, Access::Authorized);
pub const WEBHOOK: Route = route("POST /webhooks/finexer", Function::Webhook, Access::Public);

/// Every route of the HTTP API.
pub const ROUTES: &[Route] = &[
    CREATE_LINK,
    CALLBACK,
    CONFIRM,
    RECONFIRM,
    REVOKE,
    LIST_CONSENTS,
    ONE_CONSENT,
    CONSENT_ACCOUNTS,
    ALL_ACCOUNTS,
    WEBHOOK,
];

/// The consent id parameter of the `/consents/{id}/...` routes.
pub const CONSENT_ID: &str = "id";

impl Route {
    pub fn method(&self) -> &'static str {
        self.key.split_once(' ').map_or("", |(method, _)| method)
    }

    /// The path template, `/consents/{id}/revoke`.
    pub fn path(&self) -> &'static str {
        self.key.split_once(' ').map_or("", |(_, path)| path)
    }

    pub fn is_authorized(&self) -> bool {
        self.access == Access::Authorized
    }

    /// The names of its path parameters, in order.
    pub fn parameters(&self) -> impl Iterator<Item = &'static str> {
        self.path()
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
    }

    /// The route with this key.
    pub fn by_key(key: &str) -> Option<&'static Route> {
        ROUTES.iter().find(|route| route.key == key)
    }

    /// The route a request for `method` and `path` takes, with the path
    /// parameters API Gateway would hand the function (percent-decoded).
    /// For the tools that play API Gateway; handlers never parse the path.
    pub fn find(method: &str, path: &str) -> Option<(&'static Route, Vec<(&'static str, String)>)> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        ROUTES.iter().find_map(|route| {
            let parts: Vec<&str> = route.path().split('/').filter(|s| !s.is_empty()).collect();
            if route.method() != method || parts.len() != segments.len() {
                return None;
            }
            let mut parameters = Vec::new();
            for (part, segment) in parts.iter().zip(&segments) {
                match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => parameters.push((name, decoded(segment))),
                    None if part == segment => {}
                    None => return None,
                }
            }
            Some((route, parameters))
        })
    }

    /// The route API Gateway says the request came by (its `routeKey`),
    /// if it is one of ours.
    pub fn of_request(request: &Request) -> Option<&'static Route> {
        match request.request_context_ref() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => {
                Route::by_key(context.route_key.as_deref()?)
            }
            _ => None,
        }
    }
}

fn decoded(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={segment}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// The path parameter `name` API Gateway passed with the request. Missing
/// only when the event did not come by one of our routes with it (a route
/// configured without it): a clear 404, never a panic.
pub fn path_parameter(request: &Request, name: &str) -> Result<String> {
    let parameters = request.path_parameters_ref();
    match parameters.and_then(|p| p.first(name)) {
        Some(value) => Ok(value.to_owned()),
        None => {
            tracing::warn!(
                parameter = name,
                "the event carries no such path parameter: is the route misconfigured?"
            );
            Err(Error::NoRoute(format!(
                "The request's route passes no `{name}` path parameter to this function."
            )))
        }
    }
}

/// The table as the tools outside Rust read it (the infra check).
pub fn as_json() -> Value {
    let functions: Vec<Value> = Function::ALL
        .into_iter()
        .map(|function| {
            let routes: Vec<Value> = function
                .routes()
                .map(|route| {
                    json!({
                        "key": route.key,
                        "method": route.method(),
                        "path": route.path(),
                        "authorized": route.is_authorized(),
                        "parameters": route.parameters().collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "name": function.name(),
                "handler": function.handler(),
                "scheduled": function.is_scheduled(),
                "routes": routes,
            })
        })
        .collect();
    json!({ "functions": functions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_key_is_a_method_and_a_template() {
        for route in ROUTES {
            assert!(
                matches!(route.method(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE"),
                "{}",
                route.key
            );
            assert!(route.path().starts_with('/'), "{}", route.key);
            assert!(!route.path().contains("//"), "{}", route.key);
            assert_eq!(
                ROUTES.iter().filter(|r| r.key == route.key).count(),
                1,
                "{} is listed twice",
                route.key
            );
            assert!(!route.function.is_scheduled());
        }
    }

    #[test]
    fn only_the_reconciler_has_no_route() {
        let scheduled: Vec<_> = Function::ALL
            .into_iter()
            .filter(|f| f.is_scheduled())
            .collect();
        assert_eq!(scheduled, [Function::Reconcile]);
        for function in Function::ALL {
            assert_eq!(Function::from_name(function.name()), Some(function));
        }
        assert_eq!(Function::from_name("hello"), None);
    }

    #[test]
    fn only_the_callback_and_the_webhook_are_public() {
        let public: Vec<_> = ROUTES
            .iter()
            .filter(|r| !r.is_authorized())
            .map(|r| r.key)
            .collect();
        assert_eq!(public, ["GET /callback", "POST /webhooks/finexer"]);
    }

    #[test]
    fn a_path_finds_its_route_and_parameters() {
        let (route, parameters) = Route::find("POST", "/consents/bc%5F1/revoke").unwrap();
        assert_eq!(route, &REVOKE);
        assert_eq!(parameters, [("id", "bc_1".to_owned())]);
        assert_eq!(
            Route::find("GET", "/consents/bc_1").unwrap().0,
            &ONE_CONSENT
        );
        assert_eq!(Route::find("GET", "/consents").unwrap().1, []);
        assert!(Route::find("GET", "/consents/bc_1/revoke").is_none());
        assert!(Route::find("DELETE", "/consents/bc_1").is_none());
        assert!(Route::find("GET", "/local/reconcile").is_none());
        assert!(Route::find("GET", "").is_none());
    }

    fn event(route_key: &str, parameters: Value) -> Request {
        let event = json!({
            "version": "2.0", "routeKey": route_key, "rawPath": "/consents/x/revoke",
            "rawQueryString": "", "headers": {},
            "pathParameters": parameters,
            "requestContext": {"http": {"method": "POST", "path": "/consents/x/revoke"},
                               "routeKey": route_key, "stage": "$default"},
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn a_request_names_its_route_and_parameters_by_its_event() {
        let request = event("POST /consents/{id}/revoke", json!({"id": "bc_7"}));
        assert_eq!(Route::of_request(&request), Some(&REVOKE));
        assert_eq!(path_parameter(&request, CONSENT_ID).unwrap(), "bc_7");
    }

    #[test]
    fn a_misconfigured_route_is_a_clear_404() {
        let request = event("$default", Value::Null);
        assert_eq!(Route::of_request(&request), None);
        let error = path_parameter(&request, CONSENT_ID).unwrap_err();
        assert!(matches!(error, Error::NoRoute(_)), "{error:?}");
        let response = error.into_problem_response();
        assert_eq!(response.status(), 404);
        let lambda_http::Body::Text(body) = response.body() else {
            panic!("a problem body")
        };
        assert!(body.contains("`id` path parameter"), "{body}");
    }

    #[test]
    fn the_json_lists_every_function_and_route_once() {
        let table = as_json();
        let functions = table["functions"].as_array().unwrap();
        assert_eq!(functions.len(), Function::ALL.len());
        let keys: Vec<&str> = functions
            .iter()
            .flat_map(|f| f["routes"].as_array().unwrap())
            .map(|r| r["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys.len(), ROUTES.len());
        let reconcile = &functions[6];
        assert_eq!(reconcile["name"], "reconcile");
        assert_eq!(reconcile["scheduled"], true);
        let revoke = functions.iter().find(|f| f["name"] == "revoke").unwrap();
        assert_eq!(
            revoke["routes"][0],
            json!({"key": "POST /consents/{id}/revoke", "method": "POST",
                   "path": "/consents/{id}/revoke", "authorized": true, "parameters": ["id"]})
        );
    }
}
