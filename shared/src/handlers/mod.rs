//! One handler per function. Each is a plain async function over an
//! `http::Request` with its dependencies passed in, so the Lambda runtime and
//! the local server run the same code.

pub(crate) mod callback;
mod confirm;
mod consents;
mod create_link;
pub mod erasure;
mod follow;
pub mod reconcile;
mod reconfirm;
mod revocation;
mod revoke;
mod webhook;

pub use callback::callback;
pub use confirm::{Confirm, confirm};
pub use consents::consents;
pub use create_link::{CreateLink, LinkCreated, create_link};
pub use reconcile::reconcile;
pub use revoke::revoke;
pub use webhook::webhook;

use lambda_http::{Body, Request, Response};

use crate::app::App;
use crate::routes::{self, Function, Route};

use crate::error::{Error, Result};
use crate::store::ConsentRecord;
use crate::timestamp::Timestamp;

/// Ids from URLs are opaque to us but bounded: printable ASCII, no separators.
fn checked_id<'a>(raw: &'a str, what: &str) -> Result<&'a str> {
    let valid = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(raw)
    } else {
        Err(Error::BadRequest(format!("{what} is not a valid id")))
    }
}

/// Runs `function`'s handler: the one name-to-handler dispatch, for the
/// local gateway and the tools that play API Gateway. A Lambda binary calls
/// its own handler directly (linking only that one).
pub async fn dispatch(function: Function, app: &App, request: Request) -> Response<Body> {
    match function {
        Function::CreateLink => create_link(app, request).await,
        Function::Callback => callback(app, request).await,
        Function::Confirm => confirm(app, request).await,
        Function::Revoke => revoke(app, request).await,
        Function::Consents => consents(app, request).await,
        Function::Webhook => webhook(app, request).await,
        // The route table gives it no route: nothing HTTP reaches it.
        Function::Reconcile => {
            Error::NoRoute("The reconciler serves no HTTP route.".into()).into_problem_response()
        }
    }
}

/// The consent id of a `/consents/{id}/...` route, from the event's path
/// parameters (API Gateway's, never parsed out of the raw path).
fn consent_id(request: &Request) -> Result<String> {
    let raw = routes::path_parameter(request, routes::CONSENT_ID)?;
    let id = checked_id(&raw, "consent id")?;
    crate::metrics::note_consent(id);
    Ok(id.to_owned())
}

/// The route the request came by, if it is one of `function`'s.
fn route_of(request: &Request, function: Function) -> Option<&'static Route> {
    Route::of_request(request).filter(|route| route.function == function)
}

/// The consent if it exists and belongs to `owner`; otherwise NotFound, the
/// same answer for both so that ids cannot be probed.
async fn owned_consent(
    store: &dyn crate::store::ConsentStore,
    consent_id: &str,
    owner: &str,
) -> Result<ConsentRecord> {
    store
        .consent(consent_id)
        .await?
        .filter(|record| record.owner == owner)
        .ok_or(Error::NotFound)
}

fn now() -> Timestamp {
    Timestamp::now()
}
