//! The AWS emulator the suites that need DynamoDB and Secrets Manager use:
//! moto, started by `make test` and named by `AWS_ENDPOINT_URL`.

/// `AWS_ENDPOINT_URL` as set; panics unless it is set and on 127.0.0.1,
/// the only host tests contact.
pub fn moto_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL is not set: this test needs the moto emulator; run it with `make test`",
    );
    let url = url::Url::parse(&endpoint).expect("AWS_ENDPOINT_URL is a URL");
    assert_eq!(
        url.host_str(),
        Some("127.0.0.1"),
        "only 127.0.0.1 is contacted, not {endpoint}"
    );
    endpoint
}

/// moto's `host:port`, for a TCP proxy in front of it.
pub fn moto_address() -> String {
    let endpoint = moto_endpoint();
    let url = url::Url::parse(&endpoint).expect("AWS_ENDPOINT_URL is a URL");
    let port = url.port_or_known_default().expect("a port");
    format!("127.0.0.1:{port}")
}
