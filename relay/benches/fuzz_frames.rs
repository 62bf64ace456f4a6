//! Frame fuzzer: a long proptest run (not a timed benchmark) that feeds generated and mutated
//! frames through `netio::wire::parse_frame` and the relay's ingress path
//! (`relay::ingress::classify` and `route`: parse, IPv4 header checksum, VLAN, lookup, TTL).
//! It asserts that nothing panics, that the relay's verdict is the parser's (every parse error
//! is the drop reason it maps to), that every rejection is a drop reason, and that a forwarded
//! TTL is below the arriving one and at most `--ttl`.
//!
//! Frames: valid Ethernet/IPv4/UDP frames (random payload length, TTL, TOS, ports, group),
//! with 0-3 random VLAN tags (802.1Q or 802.1ad, random TCI), then mutated: random bit flips
//! (half of them in the headers), truncation, random trailing bytes, random kernel VLAN
//! metadata; one case in four is random bytes of a random length instead.
//!
//! Cases: `MCAST_LAB_FUZZ_CASES` (default 10,000,000; `-- --test` runs 10,000). Runs:
//! - manual, long: `cargo bench -p relay --bench fuzz_frames` (optimized);
//! - bounded, debug build (CI): `MCAST_LAB_FUZZ_CASES=1000000 cargo test -p relay --bench
//!   fuzz_frames`.
//!
//! A failure prints proptest's minimal failing case and exits non-zero.

use netio::packet_socket::Received;
use netio::wire::{self, FrameHeader, PAYLOAD_OFFSET};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use relay::drop_reason::DropReason;
use relay::ingress;
use relay::table::{CompiledRule, FlowKey, RuleTable};
use relay::ttl::{TtlMode, TtlPolicy};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const IFINDEX: u32 = 3;
const DEFAULT_CASES: u32 = 10_000_000;
const TEST_MODE_CASES: u32 = 10_000;
/// Groups with rules (untagged; the first also on VLAN 100).
const GROUPS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(239, 1, 0, 1),
    Ipv4Addr::new(239, 1, 0, 2),
    Ipv4Addr::new(239, 1, 0, 3),
    Ipv4Addr::new(239, 1, 0, 4),
];

/// One generated case: proptest draws these four values; everything else about the frame is
/// derived from `seed` (a SplitMix64 stream), which keeps generation cheap enough for 10^7
/// cases and every case reproducible from its printed values.
#[derive(Debug, Clone, Copy)]
struct Case {
    payload_len: usize,
    ttl: u8,
    /// Low 2 bits: tag count weight; bit 2: garbage instead of a frame (half the time); bit 3:
    /// kernel VLAN metadata; bits 4-5: bit flip count; bits 6-7 both set: truncation; bit 7:
    /// trailing bytes.
    shape: u8,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    let ttl = prop_oneof![1 => 0u8..=2, 7 => any::<u8>()];
    (0usize..600, ttl, any::<u8>(), any::<u64>()).prop_map(|(payload_len, ttl, shape, seed)| Case {
        payload_len,
        ttl,
        shape,
        seed,
    })
}

/// SplitMix64: the stream the mutations of a case are drawn from.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tags in front of the EtherType: mostly none, sometimes 1-3 of either kind, random TCI.
fn tags(case: &Case, mix: &mut Mix) -> Vec<u8> {
    let count = match case.shape & 0b11 {
        0 | 1 => 0,
        2 => 1,
        _ => 1 + mix.below(3),
    };
    let mut tags = Vec::with_capacity(count * 4);
    for _ in 0..count {
        let word = mix.next();
        let tpid: u16 = if word & 1 == 0 { 0x8100 } else { 0x88a8 };
        tags.extend_from_slice(&tpid.to_be_bytes());
        tags.extend_from_slice(&((word >> 8) as u16).to_be_bytes());
    }
    tags
}

/// The frame of a case, and whether it was left intact (built, not mutated).
fn build(case: &Case) -> (Vec<u8>, bool) {
    let mut mix = Mix(case.seed);
    if case.shape & 0b100 != 0 && mix.below(2) == 0 {
        let len = mix.below(200);
        return ((0..len).map(|_| mix.next() as u8).collect(), false);
    }
    let payload: Vec<u8> = (0..case.payload_len)
        .map(|i| (i as u8) ^ case.seed as u8)
        .collect();
    let group = if mix.below(4) == 0 {
        Ipv4Addr::from(mix.next() as u32)
    } else {
        GROUPS[mix.below(GROUPS.len())]
    };
    let header = FrameHeader {
        source_mac: [2, 0, 0, 0, 0, 1],
        source: Ipv4Addr::new(198, 18, 0, 1),
        group,
        source_port: mix.next() as u16,
        destination_port: 5000,
        ttl: case.ttl,
        tos: mix.next() as u8,
        ident: 0,
    };
    let mut frame = vec![0u8; PAYLOAD_OFFSET + payload.len()];
    let sum = wire::checksum::sum(&payload);
    if wire::write_frame(&mut frame, &header, &payload, sum).is_err() {
        return (frame, false);
    }
    frame.splice(12..12, tags(case, &mut mix));
    if case.shape & 0x80 != 0 {
        frame.extend((0..mix.below(8)).map(|_| mix.next() as u8));
    }
    let mut intact = true;
    for _ in 0..(case.shape >> 4) & 0b11 {
        // Half the flips land in the headers, where they change verdicts.
        let span = if mix.below(2) == 0 { 60 } else { frame.len() };
        let at = mix.below(span.min(frame.len()));
        frame[at] ^= 1 << mix.below(8);
        intact = false;
    }
    if case.shape & 0xc0 == 0xc0 {
        frame.truncate(mix.below(frame.len() + 1));
        intact = false;
    }
    (frame, intact)
}

/// The VLAN tag the kernel would have stripped into the metadata, if the case has one.
fn meta_tci(case: &Case) -> Option<u16> {
    (case.shape & 0b1000 != 0).then_some((case.seed >> 48) as u16)
}

fn table() -> RuleTable {
    let rule = |id| {
        Arc::new(CompiledRule {
            id,
            stats: Arc::default(),
            outputs: Box::new([]),
            in_kernel: false,
        })
    };
    let key = |group, vlan| FlowKey {
        ifindex: IFINDEX,
        vlan,
        group,
        port: 5000,
        source: Ipv4Addr::UNSPECIFIED,
    };
    let untagged = GROUPS
        .iter()
        .enumerate()
        .map(|(i, g)| (key(*g, 0), rule(i as u64 + 1)));
    RuleTable::new(untagged.chain([(key(GROUPS[0], 100), rule(100))]))
}

/// Outcome counters: one per drop reason, plus forwarded.
struct Tally {
    drops: [AtomicU64; DropReason::COUNT],
    forwarded: AtomicU64,
}

/// Runs one case through the parser and the ingress path; checks every verdict.
fn check(case: Case, table: &RuleTable, tally: &Tally) -> Result<(), TestCaseError> {
    let policy = TtlPolicy::new(8, TtlMode::Decrement);
    let (frame, intact) = build(&case);
    let meta = Received {
        ifindex: IFINDEX,
        pkttype: 2,
        truncated: false,
        len: frame.len(),
        vlan_tci: meta_tci(&case),
    };
    let parsed = wire::parse_frame(&frame);
    let outcome = match (parsed, ingress::classify(&frame, &meta)) {
        (Err(e), Err(reason)) => {
            prop_assert_eq!(reason, DropReason::from(e), "relay and parser disagree");
            Err(reason)
        }
        (Err(e), Ok(_)) => return Err(TestCaseError::fail(format!("parser said {e}, relay ok"))),
        (Ok(d), Err(reason)) => {
            prop_assert_eq!(
                reason,
                DropReason::StackedVlan,
                "only a VLAN verdict after a parse"
            );
            prop_assert!(usize::from(d.vlan_tags) + usize::from(meta.vlan_tci.is_some()) >= 2);
            Err(reason)
        }
        (Ok(_), Ok((d, vlan))) => {
            prop_assert!(vlan <= wire::VLAN_ID_MASK);
            match ingress::route(table, policy, IFINDEX, vlan, &d) {
                Ok(None) => {
                    prop_assert!(false, "no rule of this table is the tc program's");
                    Ok(())
                }
                Ok(Some((_, ttl))) => {
                    prop_assert!(ttl < d.ttl && ttl <= policy.limit, "{} -> {}", d.ttl, ttl);
                    Ok(())
                }
                Err(DropReason::TtlExpired) => {
                    prop_assert!(d.ttl <= 1);
                    Err(DropReason::TtlExpired)
                }
                Err(reason) => {
                    prop_assert_eq!(reason, DropReason::NoRule);
                    Err(reason)
                }
            }
        }
    };
    if intact && case.shape & 0b11 < 2 && meta_tci(&case).is_none() {
        prop_assert!(
            parsed.is_ok(),
            "an intact untagged frame was refused: {:?}",
            outcome
        );
    }
    match outcome {
        Ok(()) => tally.forwarded.fetch_add(1, Ordering::Relaxed),
        Err(reason) => {
            prop_assert!(DropReason::ALL.contains(&reason));
            tally.drops[reason as usize].fetch_add(1, Ordering::Relaxed)
        }
    };
    Ok(())
}

fn cases() -> u32 {
    if std::env::args().any(|a| a == "--test") {
        return TEST_MODE_CASES;
    }
    match std::env::var("MCAST_LAB_FUZZ_CASES") {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            eprintln!("MCAST_LAB_FUZZ_CASES={text:?} is not a case count (1-4294967295)");
            std::process::exit(2)
        }),
        Err(_) => DEFAULT_CASES,
    }
}

fn main() {
    let cases = cases();
    let table = table();
    let tally = Tally {
        drops: std::array::from_fn(|_| AtomicU64::new(0)),
        forwarded: AtomicU64::new(0),
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    eprintln!("fuzz_frames: {cases} cases");
    let started = Instant::now();
    let result = runner.run(&case(), |case| check(case, &table, &tally));
    let elapsed = started.elapsed();
    println!(
        "fuzz_frames: {cases} cases in {:.1} s; forwarded {}",
        elapsed.as_secs_f64(),
        tally.forwarded.load(Ordering::Relaxed)
    );
    for reason in DropReason::ALL {
        let count = tally.drops[reason as usize].load(Ordering::Relaxed);
        if count > 0 {
            println!("  {:<18} {count}", reason.name());
        }
    }
    if let Err(failure) = result {
        eprintln!("fuzz_frames FAILED: {failure}");
        std::process::exit(1);
    }
    if cases >= TEST_MODE_CASES && tally.forwarded.load(Ordering::Relaxed) == 0 {
        eprintln!("fuzz_frames FAILED: no case was forwarded (the generator is broken)");
        std::process::exit(1);
    }
}
