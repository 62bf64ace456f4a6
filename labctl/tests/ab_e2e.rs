//! `labctl ab` end to end: the same relay binary against itself must say "no change detected";
//! a relay slowed by 10 us of busy work per frame (`relay run --handicap-ns 10000`, about
//! doubling its process CPU per packet) must be reported slower. Root only (loud skip otherwise); they
//! need the release binaries (`cargo build --release -p labctl -p relay -p loadgen`). Each checks
//! that its topologies left no namespace behind. Bad arguments are checked without root.
//!
//! Both runs use a cut-down `scenarios/ab.toml` with the worker data plane (`--dataplane
//! user`: its work is the relay process's, so every metric, process CPU included, is judged;
//! under the default tc data plane the process CPU is a few ms per repeat, "not judged"): 40 streams only (the 1-stream point adds a
//! zero-loss search per repeat but no other metric), 2 s at 40k pps (80k packets: enough for CPU
//! per packet); the A/A run adds a coarse zero-loss search (resolution 20 %, probes of 0.5 s).
//! About 100 s (A/A) and 60 s (handicap), 4 repeats each, on 2 cores; more when another
//! measurement holds the machine's measurement lock.
//!
//! The handicap test asserts what is certain: B is reported slower (exit 3 with
//! `--fail-on-slower`), slower on the relay's process CPU per packet (+111 % measured, 95 % CI
//! +99..+122 % with 5 pairs, on a VM whose load changed during the run), faster on nothing.
//! A 5 us handicap gave +39..+55 %, but once a CI of -44..+153 % with 3 pairs: too close to
//! call every time. The zero-loss rate is usually slower too (-53 %, CI -75..-33 % in one run),
//! but on a shared machine it drifts by a factor of 3 within a run (which pairing only partly
//! removes): it is not searched there; latency is printed, not asserted.

use labctl::ab::{self, AbMetric, AbReport, Change};
use labctl::results::Results;
use labctl::testing::{namespaces_of, require_root};
use std::path::{Path, PathBuf};
use std::process::Command;

const SCENARIO: &str = r#"name = "ab-e2e"
systems = ["relay/pool@a", "relay/pool@b"]
streams = [40]
rate_pps = [1000.0]
size = [1000]
duration_s = 2.0
topology = "chain"
isolation = "auto"
join_delay = false

[builds.a]
args = ["--dataplane", "user"]
"#;

/// The A/A run also searches the zero-loss rate (the handicap run does not: it is not asserted
/// there, and the search is half of a point's time).
const ZERO_LOSS: &str = r#"
[zero_loss]
min_pps = 20000.0
max_pps = 400000.0
resolution = 0.2
duration_s = 0.5
"#;

/// Output of one `labctl ab` run.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn labctl_ab(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .arg("ab")
        .args(args)
        .output()
        .expect("run labctl ab");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn relay() -> String {
    labctl::binaries::locate("relay")
        .expect("the relay binary (cargo build --release -p relay)")
        .display()
        .to_string()
}

/// Runs `labctl ab RELAY RELAY` on the test scenario with `[builds.b]` = `b_build` and
/// `repeats`; returns the run, its results and the recomputed comparison.
fn run_ab(dir: &Path, b_build: &str, repeats: u32, extra: &[&str]) -> (Run, Results, AbReport) {
    let scenario = dir.join("ab-e2e.toml");
    std::fs::write(&scenario, format!("{SCENARIO}{b_build}")).expect("write the scenario");
    let out = dir.join("reports");
    let relay = relay();
    let repeats = repeats.to_string();
    let mut args = vec![
        relay.as_str(),
        relay.as_str(),
        "--scenario",
        scenario.to_str().expect("utf-8 path"),
        "--repeats",
        &repeats,
        "--out",
        out.to_str().expect("utf-8 path"),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let run = labctl_ab(&args);
    eprintln!(
        "labctl ab {args:?}: exit {:?}\n{}\n{}",
        run.code, run.stdout, run.stderr
    );
    let results_path: PathBuf = run
        .stdout
        .lines()
        .find(|l| l.ends_with("results.json"))
        .expect("labctl ab prints where results.json is")
        .into();
    let results = Results::load(&results_path).expect("results.json loads");
    assert!(
        results_path.with_file_name("index.html").is_file(),
        "report"
    );
    assert!(results_path.with_file_name("ab.txt").is_file(), "ab.txt");
    assert_no_namespace_left(&results);
    let report = ab::compare(&results, ab::metrics::DEFAULT_NOISE);
    (run, results, report)
}

/// Every topology the run built (named in its points' notes) is gone.
fn assert_no_namespace_left(results: &Results) {
    let ids: Vec<String> = results
        .points
        .iter()
        .filter_map(labctl::testing::topology_of)
        .collect();
    assert_eq!(
        ids.len(),
        results.points.len(),
        "every point names its topology"
    );
    for id in ids {
        let left = namespaces_of(&id);
        assert!(left.is_empty(), "run {id} left {left:?}");
    }
}

fn change(report: &AbReport, metric: AbMetric) -> Option<Change> {
    report
        .rows
        .iter()
        .find(|r| r.metric == metric)
        .unwrap_or_else(|| panic!("no {metric:?} row:\n{}", report.table()))
        .change()
}

#[test]
fn the_same_binary_against_itself_is_no_change_detected() {
    if !require_root("the_same_binary_against_itself_is_no_change_detected") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let same = format!("[builds.b]\nargs = [\"--dataplane\", \"user\"]\n{ZERO_LOSS}");
    // 6 pairs: the p99 latency is judged from 6 on (the sign test's interval of its median).
    let (run, results, report) = run_ab(dir.path(), &same, 6, &["--fail-on-slower"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(results.points.len(), 12);
    // Every search that found a lossy rate says what made that probe lossy.
    for p in &results.points {
        let Some(z) = p.zero_loss else { continue };
        if let Some(lossy) = z.lossy_pps {
            let upper = z.upper.expect("the lowest lossy probe is recorded");
            assert_eq!(upper.asked_pps, lossy, "{:?}", p.point);
        }
    }
    assert!(
        run.stdout.contains("B vs A: no change detected"),
        "{}",
        run.stdout
    );
    assert_eq!(report.count(Change::Faster), 0, "{}", report.table());
    assert_eq!(report.count(Change::Slower), 0, "{}", report.table());
    // The fixed-rate metrics are judged (the zero-loss rate and latency too, unless a repeat
    // was bound: then they say why).
    for metric in [
        AbMetric::DeliveredPct,
        AbMetric::CpuPerMpkt,
        AbMetric::ProcessCpuPerMpkt,
        AbMetric::LatencyP99Us,
    ] {
        assert_eq!(
            change(&report, metric),
            Some(Change::NoChange),
            "{metric:?}"
        );
    }
    assert!(report.judged() >= 4, "{}", report.table());
}

#[test]
fn a_relay_slowed_by_10us_per_frame_is_reported_slower() {
    if !require_root("a_relay_slowed_by_10us_per_frame_is_reported_slower") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let handicapped =
        "[builds.b]\nargs = [\"--dataplane\", \"user\", \"--handicap-ns\", \"10000\"]\n";
    let (run, _, report) = run_ab(dir.path(), handicapped, 4, &["--fail-on-slower"]);
    assert_eq!(run.code, Some(3), "--fail-on-slower: {}", run.stderr);
    assert!(run.stdout.contains("B vs A: SLOWER on"), "{}", run.stdout);
    assert_eq!(report.count(Change::Faster), 0, "{}", report.table());
    assert_eq!(
        change(&report, AbMetric::ProcessCpuPerMpkt),
        Some(Change::Slower)
    );
}

#[test]
fn a_relay_argument_that_is_not_an_executable_is_one_line_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("reports");
    let plain = dir.path().join("relay.txt");
    std::fs::write(&plain, "not a program").expect("write");
    let relay = relay();
    for (a, b, named) in [
        (
            "/nonexistent/relay",
            relay.as_str(),
            "A_RELAY /nonexistent/relay",
        ),
        (relay.as_str(), plain.to_str().expect("utf-8"), "B_RELAY "),
        ("rev:no-such-revision-xyz", relay.as_str(), "A_RELAY"),
    ] {
        let run = labctl_ab(&[a, b, "--out", out.to_str().expect("utf-8")]);
        assert_eq!(run.code, Some(1), "{a} {b}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
        assert!(run.stderr.contains(named), "{}", run.stderr);
        assert!(run.stdout.is_empty());
        assert!(!out.exists(), "nothing written for {a} {b}");
    }
    let run = labctl_ab(&[
        &relay,
        &relay,
        "--scenario",
        "quick",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("[builds.a]"), "{}", run.stderr);
    assert!(!out.exists());
}
