//! Hostile input, faults and races against the real local stack: moto (via
//! `AWS_ENDPOINT_URL`, started by `make test`), the Finexer sandbox, and every
//! handler behind the local gateway, each reached over HTTP on 127.0.0.1.

mod capacity;
mod confirmation;
mod cors;
mod dynamo_outage;
#[path = "../emf/mod.rs"]
mod emf;
mod erasure;
mod faults;
mod lifecycle;
mod limits;
mod metrics;
mod races;
mod stalls;
mod support;
