//! Control-plane cost of installing many rules: 1,000, 10,000 and 100,000 `Relay::add` calls
//! (each a distinct input group on `lo`, one output), with a membership kernel that accepts
//! every join ([`relay::null_kernel`]) and the helper-socket capacity of default sysctls (20).
//! Each add publishes a new table version, as over the control socket; the total time should
//! grow linearly with the count (issue 9: 10,000 adds <= 2 s, 100,000 <= 30 s).
//!
//! Needs `lo` with 127.0.0.1 (every network namespace has it). Run a reduced pass with
//! `cargo bench -p relay --bench rule_adds -- --warm-up-time 1 --measurement-time 2 --sample-size 10`.

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use netio::membership::{Limits, Memberships, Strategy};
use relay::null_kernel::NullKernel;
use relay::rule::Rule;
use relay::service::{Relay, RelayLimits};
use relay::stats::WorkerStats;
use relay::table::TablePublisher;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rules(count: u32) -> Vec<Rule> {
    (0..count)
        .map(|n| {
            let group = Ipv4Addr::from(u32::from(Ipv4Addr::new(239, 1, 0, 0)) + n);
            format!("lo:{group}:5000 -> lo:239.255.0.1:6000")
                .parse()
                .expect("a valid rule")
        })
        .collect()
}

fn relay() -> Relay<NullKernel> {
    let limits = Limits {
        igmp_max_memberships: 20,
        optmem_max: 20_480,
    };
    Relay::new(
        Memberships::new(Strategy::Pool, limits, NullKernel),
        TablePublisher::new(),
        vec![Arc::new(WorkerStats::default())],
        8,
        false,
    )
    .with_limits(RelayLimits {
        max_rules: 1_000_000,
        ..RelayLimits::default()
    })
    // `lo` is the only interface a bench has: allow it as an output.
    .allowing_loopback_outputs()
}

fn rule_adds(c: &mut Criterion) {
    let mut group = c.benchmark_group("rule_adds");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for count in [1_000u32, 10_000, 100_000] {
        let batch = rules(count);
        group.bench_with_input(BenchmarkId::from_parameter(count), &batch, |b, batch| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let relay = relay();
                    let started = Instant::now();
                    for rule in batch {
                        relay.add(rule.clone()).expect("add");
                    }
                    total += started.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, rule_adds);
criterion_main!(benches);
