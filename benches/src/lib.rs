//! Benchmark harness (`scripts/bench.sh`, results in `benches/RESULTS.md`).
//!
//! The library holds what the binaries share and what is worth a unit test:
//! order statistics and the "sequential round trips" rule. API Gateway
//! events and the Lambda Runtime API emulator come from the test kit
//! (`connect_testkit::Event`, `connect_testkit::runtime_api`).
//! The binaries are `bench-hello` and `bench-hello-current-thread` (the
//! reference Lambdas, feature `hello`: [`hello`]), `connect-bench`
//! (Runtime API emulator, counting proxy, every measured part and the report)
//! and `bench-overhead` (criterion benchmarks of the handlers).

#[cfg(feature = "hello")]
pub mod hello;
pub mod rounds;
pub mod stats;
