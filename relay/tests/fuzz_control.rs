//! Fuzzing the control protocol: random and mutated request lines into the protocol parser
//! (`parse_request`) and into a real `Relay` (with a membership kernel that accepts every
//! join) through `respond_line`, the path every line of the control socket takes. Checked for
//! every case: no panic, exactly one reply line that is a JSON object with a boolean `ok`; a
//! line the parser refuses is answered `"ok":false` with a non-empty `error`; a blank line gets
//! no reply.
//!
//! Inputs: valid requests (every command, rules on `lo` and unknown interfaces, many outputs),
//! then mutated: bytes flipped, inserted, deleted, truncated, huge numbers, deep nesting,
//! invalid UTF-8, very long lines, duplicated keys.
//!
//! `cargo test -p relay --test fuzz_control` runs 2,000 cases; set `MCAST_LAB_FUZZ_CASES` for a
//! long run, e.g. `MCAST_LAB_FUZZ_CASES=1000000 cargo test -p relay --test fuzz_control`.
//! Not a libtest harness (`harness = false`): it prints the case count and time.

use netio::membership::{Limits, Memberships, Strategy as Placement};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use relay::control::{parse_request, respond_line};
use relay::null_kernel::NullKernel;
use relay::service::{Relay, RelayLimits};
use relay::stats::WorkerStats;
use relay::table::TablePublisher;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

const DEFAULT_CASES: u32 = 2_000;

fn relay() -> Relay<NullKernel> {
    let limits = Limits {
        igmp_max_memberships: 20,
        optmem_max: 20_480,
    };
    Relay::new(
        Memberships::new(Placement::Pool, limits, NullKernel),
        TablePublisher::new(),
        vec![Arc::new(WorkerStats::default())],
        8,
        false,
    )
    .with_limits(RelayLimits {
        max_rules: 500,
        max_outputs: 8,
    })
    // `lo` is the only interface the fuzzer has: allow it as an output, so adds get through.
    .allowing_loopback_outputs()
}

fn endpoint() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("lo".to_string()),
            Just("nosuchif0".to_string()),
            Just(String::new()),
            "[a-z0-9]{1,20}",
        ],
        prop_oneof![
            (224u8..=239, any::<u8>(), any::<u8>(), any::<u8>())
                .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
            "[0-9.]{0,20}",
        ],
        prop_oneof![any::<u16>().prop_map(|p| p.to_string()), "[0-9-]{0,12}"],
    )
        .prop_map(|(i, g, p)| format!("{i}:{g}:{p}"))
}

fn rule_text() -> impl Strategy<Value = String> {
    (
        endpoint(),
        proptest::option::of("198\\.18\\.[0-9]{1,3}\\.[0-9]{1,3}"),
        proptest::collection::vec(endpoint(), 0..12),
    )
        .prop_map(|(input, source, outputs)| {
            let source = source.map(|s| format!("@{s}")).unwrap_or_default();
            format!("{input}{source} -> {}", outputs.join(", "))
        })
}

/// A rule the relay accepts (on `lo`, which has 127.0.0.1 in every namespace).
fn good_rule() -> impl Strategy<Value = String> {
    (
        any::<u16>(),
        1u16..,
        proptest::collection::vec((any::<u16>(), 1u16..), 1..4),
    )
        .prop_map(|(group, port, outputs)| {
            let [a, b] = group.to_be_bytes();
            let outputs: Vec<String> = outputs
                .iter()
                .map(|(g, p)| {
                    let [c, d] = g.to_be_bytes();
                    format!("lo:239.200.{c}.{d}:{p}")
                })
                .collect();
            format!("lo:239.100.{a}.{b}:{port} -> {}", outputs.join(", "))
        })
}

/// A valid-looking request object.
fn request() -> impl Strategy<Value = Value> {
    prop_oneof![
        good_rule().prop_map(|rule| serde_json::json!({"cmd": "add", "rule": rule})),
        rule_text().prop_map(|rule| serde_json::json!({"cmd": "add", "rule": rule})),
        any::<u64>().prop_map(|id| serde_json::json!({"cmd": "remove", "id": id % 600})),
        rule_text().prop_map(|rule| serde_json::json!({"cmd": "remove", "rule": rule})),
        Just(serde_json::json!({"cmd": "list"})),
        Just(serde_json::json!({"cmd": "stats"})),
        Just(serde_json::json!({"cmd": "memberships"})),
    ]
}

/// Hostile lines built from scratch.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (1usize..5000)
            .prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        (1usize..3000).prop_map(|depth| format!(
            "{}1{}",
            "{\"cmd\":".repeat(depth),
            "}".repeat(depth)
        )
        .into_bytes()),
        "[0-9]{20,400}".prop_map(|n| format!("{{\"cmd\":\"remove\",\"id\":{n}}}").into_bytes()),
        Just(b"{\"cmd\":\"remove\",\"id\":1e999}".to_vec()),
        Just(b"{\"cmd\":\"remove\",\"id\":-0.0}".to_vec()),
        (1usize..200_000).prop_map(|n| {
            format!("{{\"cmd\":\"add\",\"rule\":\"{}\"}}", "x".repeat(n)).into_bytes()
        }),
        proptest::collection::vec(any::<u8>(), 0..300),
        Just(b"{\"cmd\":\"list\",\"cmd\":\"add\"}".to_vec()),
        Just(b"{\"cmd\":\"\xff\xfe\"}".to_vec()),
        Just(b"{\"cmd\":\"list\"}\x00".to_vec()),
    ]
}

/// One mutation of a line's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    Splice(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        Just(b"\xc3\x28".to_vec()),
        Just(b"\xff".to_vec()),
        Just(b"99999999999999999999999".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"null".to_vec()),
        Just(b"\\u0000".to_vec()),
        Just(b"\",\"".to_vec()),
        Just(b"{[".to_vec()),
        Just(b"->".to_vec()),
        Just(b",".to_vec()),
        Just(b"@".to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), token).prop_map(|(i, t)| Mutation::Splice(i, t)),
    ]
}

fn mutate(mut line: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match m {
            Mutation::Flip(i, b) if !line.is_empty() => {
                let i = i % line.len();
                line[i] ^= b | 1;
            }
            Mutation::Insert(i, b) => line.insert(at(*i, line.len()), *b),
            Mutation::Delete(i) if !line.is_empty() => {
                line.remove(i % line.len());
            }
            Mutation::Truncate(i) => line.truncate(at(*i, line.len())),
            Mutation::Splice(i, token) => {
                let i = at(*i, line.len());
                line.splice(i..i, token.iter().copied());
            }
            _ => {}
        }
    }
    line
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => request().prop_map(|r| r.to_string().into_bytes()),
        4 => (request(), proptest::collection::vec(mutation(), 1..6))
            .prop_map(|(r, m)| mutate(r.to_string().into_bytes(), &m)),
        2 => hostile(),
    ]
}

/// The checks of one case.
fn check(relay: &Relay<NullKernel>, line: &[u8]) -> Result<(), TestCaseError> {
    let parsed = std::str::from_utf8(line).map(|text| parse_request(text.trim()));
    let Some(reply) = respond_line(relay, line) else {
        prop_assert!(
            std::str::from_utf8(line).is_ok_and(|t| t.trim().is_empty()),
            "only a blank line goes unanswered"
        );
        return Ok(());
    };
    prop_assert!(!reply.contains('\n'), "one reply line: {reply}");
    let value: Value = serde_json::from_str(&reply)
        .map_err(|e| TestCaseError::fail(format!("reply is not JSON ({e}): {reply}")))?;
    let ok = value["ok"].as_bool();
    prop_assert!(ok.is_some(), "no boolean ok: {reply}");
    if ok == Some(false) {
        prop_assert!(
            value["error"].as_str().is_some_and(|e| !e.is_empty()),
            "an error reply without a message: {reply}"
        );
    }
    if !matches!(parsed, Ok(Ok(_))) {
        prop_assert_eq!(ok, Some(false), "a bad line was accepted: {}", reply);
    }
    Ok(())
}

fn main() {
    let cases = std::env::var("MCAST_LAB_FUZZ_CASES")
        .ok()
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(DEFAULT_CASES);
    let relay = relay();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    let result = runner.run(&line(), |line| check(&relay, &line));
    let took = started.elapsed();
    match result {
        Ok(()) => println!(
            "fuzz_control: {cases} cases, 0 failures, {} rules installed at the end, {:.1} s",
            relay.list().len(),
            took.as_secs_f64()
        ),
        Err(e) => {
            eprintln!(
                "fuzz_control: FAILED after {:.1} s: {e}",
                took.as_secs_f64()
            );
            std::process::exit(1);
        }
    }
}
