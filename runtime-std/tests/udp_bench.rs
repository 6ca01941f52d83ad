//! Runs the issue-3 benchmark on demand; it is not a test and asserts nothing about speed.
//!
//! `cargo test --release -p huddle-runtime-std --test udp_bench -- --ignored --nocapture`
//! (`HUDDLE_BENCH_MIB` sets the file size, default 256).

use huddle_runtime_std::udp::bench::{BenchOptions, bench_udp};

#[test]
#[ignore = "a benchmark: run it in release mode on purpose"]
fn bench_udp_against_tcp() {
    let mib: u64 = std::env::var("HUDDLE_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let report = bench_udp(&BenchOptions {
        size: mib << 20,
        ..BenchOptions::default()
    })
    .expect("benchmark failed");
    // Correctness only: every copy was hash-checked inside the benchmark.
    assert_eq!(report.size, mib << 20);
}
