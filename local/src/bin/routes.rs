//! Prints the route table (`shared::routes`) as JSON, for the tools outside
//! Rust: `cargo run -q -p connect-local --bin routes`. The infra check
//! (tests/infra/check_consistency.py) compares the template with it.

fn main() {
    println!("{:#}", shared::routes::as_json());
}
