//! The Finexer consent journey: the handlers of every function and what they
//! share. Each function's `main.rs` only calls [`lambda::run`] with its handler.

pub mod app;
pub mod auth;
pub mod config;
pub mod consent;
pub mod deadline;
pub mod error;
pub mod event;
pub mod finexer;
pub mod handlers;
pub mod http;
pub mod lambda;
pub mod metrics;
pub mod net;
pub mod prefetch;
pub mod routes;
pub mod secrets;
pub mod state;
pub mod store;
pub mod timestamp;
pub mod webhook;

pub use app::App;
pub use error::{Error, Result};
pub use timestamp::Timestamp;
