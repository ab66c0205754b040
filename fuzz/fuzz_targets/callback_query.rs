//! `GET /callback?<query>`: never a panic, never a 5xx but the 503 of a dead
//! Finexer, a redirect only for a genuine state, no record changed.
#![no_main]

use connect_fuzz::{harness, query_from_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let query = query_from_bytes(data);
    let Some(request) = connect_fuzz::model::callback_request(&query) else {
        panic!("query_from_bytes made an invalid query: {query:?}");
    };
    let seen = request.uri().query().unwrap_or_default().to_owned();
    let response =
        h.rt.block_on(shared::handlers::callback(&h.fixture.app, request));
    if let Err(problem) =
        h.rt.block_on(h.fixture.check_callback(&seen, None, &response))
    {
        panic!("{problem}");
    }
});
