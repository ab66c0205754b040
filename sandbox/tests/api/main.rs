//! The sandbox checked against `docs/finexer-api.md`, point by point,
//! over real HTTP. One binary, one module per topic.

mod accounts;
mod auth;
mod binary;
mod consent_page;
mod consents;
mod encoding;
mod faults;
mod helpers;
mod paging;
mod request_log;
mod webhooks;
