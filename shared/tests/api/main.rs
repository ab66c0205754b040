//! Integration tests of the handlers against a real DynamoDB and Secrets
//! Manager API (moto) and the in-process Finexer sandbox. Run with `make test`.

mod callback_security;
mod confirm;
mod events;
mod faults;
mod journey;
mod proof;
mod reconcile;
mod store;
mod support;
mod webhooks;
