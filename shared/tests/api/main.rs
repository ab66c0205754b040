//! Integration tests of the four handlers against a real DynamoDB and Secrets
//! Manager API (moto) and a wiremock Finexer. Run with `make test`.

mod callback_security;
mod confirm;
mod events;
mod faults;
mod journey;
mod reconcile;
mod store;
mod support;
mod webhooks;
