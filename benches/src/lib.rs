//! Benchmark harness (`scripts/bench.sh`, results in `benches/RESULTS.md`).
//!
//! The library holds what the binaries share and what is worth a unit test:
//! order statistics, the "sequential round trips" rule, and (feature
//! `emulator`) the Lambda Runtime API emulator, which
//! `local/tests/hostile_events.rs` also drives the function binaries with.
//! API Gateway events come from the test kit (`connect_testkit::Event`).
//! The binaries are `bench-hello` and `bench-hello-current-thread` (the
//! reference Lambdas, feature `hello`: [`hello`]), `connect-bench`
//! (Runtime API emulator, counting proxy, every measured part and the report)
//! and `bench-overhead` (criterion benchmarks of the handlers).

#[cfg(feature = "hello")]
pub mod hello;
pub mod rounds;
#[cfg(feature = "emulator")]
pub mod runtime_api;
pub mod stats;
