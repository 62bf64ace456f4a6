//! Per-packet cost of the data plane's CPU work: parse an Ethernet/IPv4/UDP frame and look the
//! stream up in the rule table, with 1, 1000 and 10000 rules. Frames cycle over 256 different
//! installed streams so the lookup is not always the same cache line. A second group adds the
//! egress frame build (headers + 1000-byte payload copy + checksums) for one output.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use netio::wire::{self, FrameHeader, checksum};
use relay::table::{CompiledOutput, CompiledRule, FlowKey, RuleTable};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

const IFINDEX: u32 = 3;
const PAYLOAD: usize = 1000;

fn group(base: [u8; 4], n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::from(base)) + n)
}

fn header(group: Ipv4Addr) -> FrameHeader {
    FrameHeader {
        source_mac: [2, 0, 0, 0, 0, 1],
        source: Ipv4Addr::new(198, 18, 1, 1),
        group,
        source_port: 40000,
        destination_port: 5000,
        ttl: 4,
        tos: 0,
        ident: 0,
    }
}

fn table(rules: u32) -> RuleTable {
    RuleTable::new((0..rules).map(|n| {
        let key = FlowKey {
            ifindex: IFINDEX,
            vlan: 0,
            group: group([239, 1, 0, 1], n),
            port: 5000,
            source: Ipv4Addr::UNSPECIFIED,
        };
        let rule = Arc::new(CompiledRule {
            id: u64::from(n),
            stats: Arc::default(),
            outputs: Box::new([CompiledOutput {
                ifindex: 4,
                header: header(group([239, 2, 0, 1], n)),
                udp: None,
                stats: Arc::default(),
            }]),
            in_kernel: false,
        });
        (key, rule)
    }))
}

fn frames(rules: u32) -> Vec<Vec<u8>> {
    let payload = vec![0xa5u8; PAYLOAD];
    (0..256u32)
        .map(|i| {
            let n = (i.wrapping_mul(2_654_435_761)) % rules;
            let mut frame = vec![0u8; wire::PAYLOAD_OFFSET + PAYLOAD];
            let len = wire::write_frame(
                &mut frame,
                &header(group([239, 1, 0, 1], n)),
                &payload,
                checksum::sum(&payload),
            )
            .expect("buffer sized for the frame");
            frame.truncate(len);
            frame
        })
        .collect()
}

fn parse_and_lookup(c: &mut Criterion) {
    let mut bench = c.benchmark_group("parse_lookup");
    bench.throughput(Throughput::Elements(1));
    for rules in [1u32, 1000, 10000] {
        let table = table(rules);
        let frames = frames(rules);
        bench.bench_with_input(BenchmarkId::from_parameter(rules), &rules, |b, _| {
            let mut i = 0usize;
            b.iter(|| {
                let frame = &frames[i & 255];
                i = i.wrapping_add(1);
                let d = wire::parse_frame(black_box(frame)).expect("valid frame");
                let rule = table.lookup(IFINDEX, 0, d.destination, d.destination_port, d.source);
                black_box(rule.map(|r| r.id))
            });
        });
    }
    bench.finish();
}

fn parse_lookup_build(c: &mut Criterion) {
    let mut bench = c.benchmark_group("parse_lookup_build_1000B");
    bench.throughput(Throughput::Elements(1));
    for rules in [1u32, 10000] {
        let table = table(rules);
        let frames = frames(rules);
        let mut out = vec![0u8; 9216];
        bench.bench_with_input(BenchmarkId::from_parameter(rules), &rules, |b, _| {
            let mut i = 0usize;
            b.iter(|| {
                let frame = &frames[i & 255];
                i = i.wrapping_add(1);
                let d = wire::parse_frame(black_box(frame)).expect("valid frame");
                let rule = table
                    .lookup(IFINDEX, 0, d.destination, d.destination_port, d.source)
                    .expect("installed");
                let sum = checksum::sum(d.payload);
                for output in rule.outputs.iter() {
                    let _ = black_box(wire::write_frame(&mut out, &output.header, d.payload, sum));
                }
            });
        });
    }
    bench.finish();
}

criterion_group!(benches, parse_and_lookup, parse_lookup_build);
criterion_main!(benches);
