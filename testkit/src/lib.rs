//! The test kit: what the test suites of `shared`, `local`, `benches` and
//! `fuzz` share, written once. Dev-only: no Lambda binary depends on it.
//!
//! - [`event`]: API Gateway HTTP API (v2) events, on `aws_lambda_events`' types.
//! - [`routes`]: the route an event's method and path reach.
//! - [`model`]: the oracle of the property tests and fuzz targets.
//! - [`records`]: consent records to seed a store with.
//! - [`pkce`]: a link's verifier and challenge, and the code in a return URL's fragment.
//! - `sandbox` (feature `sandbox`): the Finexer sandbox on its own thread, and
//!   a decision on its consent page as the user's browser makes it.
//! - [`aws`]: the AWS emulator (moto) the suites use.
//! - `proxy` (feature `proxy`): a TCP proxy a test can cut off and restore.
//! - `runtime_api` (feature `runtime_api`): the Lambda Runtime API emulator
//!   a function's binary runs under.
//! - [`lambda`]: the Runtime API emulator's time limits and the test users.

pub mod aws;
pub mod event;
pub mod lambda;
pub mod model;
pub mod pkce;
#[cfg(feature = "proxy")]
pub mod proxy;
pub mod records;
pub mod routes;
#[cfg(feature = "runtime_api")]
pub mod runtime_api;
#[cfg(feature = "sandbox")]
pub mod sandbox;

pub use event::{Event, User};
