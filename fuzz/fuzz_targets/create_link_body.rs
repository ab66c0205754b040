//! `POST /links` with any body and content type: never a panic, only 401,
//! 413, 400 or (accepted, Finexer down) 503, exactly as the model says.
#![no_main]

use connect_fuzz::harness;
use connect_fuzz::model::{self, LinkInput};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("Application/JSON"),
    Some("text/plain"),
    Some("application/x-www-form-urlencoded"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    let input = LinkInput {
        user: flags & 0x80 == 0,
        content_type: CONTENT_TYPES[usize::from(flags & 0x07) % CONTENT_TYPES.len()]
            .map(|c| c.as_bytes().to_vec()),
        body: body.to_vec(),
        as_text: flags & 0x40 == 0,
    };
    let response = h.rt.block_on(shared::handlers::create_link(
        &h.fixture.app,
        model::create_link_request(&input),
    ));
    let status = response.status().as_u16();
    let expected = model::expected_create_link(&input);
    assert!(
        model::CREATE_LINK_STATUSES.contains(&status),
        "status {status} for {input:?}"
    );
    assert!(expected.contains(&status), "{status} for {input:?}");
});
