//! Synthetic A/B runs. TEST FIXTURES ONLY: invented numbers, never shipped.

use super::*;
use crate::results::{Environment, Latency, SearchBound, Status, Usage, ZeroLoss};
use crate::scenario::{Point, Scenario};
use std::path::Path;

/// Per-repeat numbers of one build at one point.
#[derive(Clone, Copy)]
struct Arm {
    cpu: [f64; 6],
    zero_loss: [f64; 6],
    latency_us: [f64; 6],
    /// p99 latency to the sinks' interfaces.
    tail_us: [f64; 6],
}

const STEADY: Arm = Arm {
    cpu: [4.0, 4.1, 3.9, 4.05, 3.95, 4.0],
    zero_loss: [150e3, 152e3, 148e3, 150e3, 149e3, 151e3],
    latency_us: [40.0, 41.0, 39.5, 40.5, 40.2, 39.8],
    tail_us: [120.0, 125.0, 118.0, 122.0, 121.0, 119.0],
};

fn scenario() -> Scenario {
    Scenario::parse(
        "name = \"ab\"\nsystems = [\"relay/pool@a\", \"relay/pool@b\"]\nstreams = [1, 40]\nrate_pps = [1000.0]\nrepeats = 6\n[builds.a]\n[builds.b]\n[zero_loss]\nmin_pps = 1000.0\nmax_pps = 300000.0\nresolution = 0.05\n",
        Path::new("ab.toml"),
    )
    .unwrap()
}

/// A run whose build b has `b` numbers and build a `a` (the same at both stream counts, with
/// the packets a point of that many streams at 1000 pps for 3 s would have).
fn run(a: Arm, b: Arm) -> Results {
    let s = scenario();
    let mut r = Results::new(&s, Path::new("ab.toml"), Environment::default());
    for p in s.points() {
        let arm = if p.system.build.as_deref() == Some(BUILD_B) {
            b
        } else {
            a
        };
        r.points.push(point(p, arm));
    }
    r.finished = Some("2026-11-30T00:00:00Z".into());
    r.refresh_aggregates();
    r
}

fn point(p: Point, arm: Arm) -> PointResult {
    let i = p.repeat as usize;
    let packets = u64::from(p.streams) * 3000;
    let mut pr = PointResult::empty(p, Status::Ok);
    (pr.offered, pr.delivered) = (packets, packets);
    pr.usage = Some(Usage {
        cpu_s: arm.cpu[i] * packets as f64 / 1e6,
        ..Usage::default()
    });
    // The sinks' host adds its own 10 us end to end; the judged latency is the interface's.
    pr.interface_latency_ns = Some(Latency {
        p50: (arm.latency_us[i] * 1000.0) as u64,
        p99: (arm.tail_us[i] * 1000.0) as u64,
        ..Latency::default()
    });
    pr.latency_ns = Some(Latency {
        p50: (arm.latency_us[i] * 1000.0) as u64 + 10_000,
        ..Latency::default()
    });
    pr.zero_loss = Some(ZeroLoss {
        pps: arm.zero_loss[i],
        lossy_pps: Some(arm.zero_loss[i] * 1.04),
        bound: None,
        resolution: Some(0.04),
        probes: 9,
        upper: None,
    });
    pr.derive();
    pr
}

fn row(report: &AbReport, streams: u32, metric: AbMetric) -> &Row {
    let point = format!("streams={streams} ");
    report
        .rows
        .iter()
        .find(|r| r.metric == metric && r.point.starts_with(&point))
        .unwrap_or_else(|| panic!("no {metric:?} row at {streams}:{}", report.table()))
}

/// The metric's row at `streams` is not judged, for a reason that mentions `why`.
fn assert_not_judged(report: &AbReport, streams: u32, metric: AbMetric, why: &str) {
    let r = row(report, streams, metric);
    assert!(r.outcome.as_ref().is_err_and(|e| e.contains(why)), "{r:?}");
}

#[test]
fn same_numbers_are_no_change_on_every_judged_metric() {
    let report = compare(&run(STEADY, STEADY), DEFAULT_NOISE_FOR_TESTS);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.rows.len(), 2 * AbMetric::ALL.len());
    assert_eq!(
        report.count(Change::Faster) + report.count(Change::Slower),
        0
    );
    // At 40 streams (120k packets per repeat) everything is judged.
    for metric in AbMetric::ALL {
        assert_eq!(row(&report, 40, metric).change(), Some(Change::NoChange));
    }
    let table = report.table();
    assert!(table.contains("B vs A: no change detected"), "{table}");
}

#[test]
fn a_noisy_metric_says_how_many_pairs_would_resolve_it() {
    // B's CPU per packet swings about ±12 % around A's: no call, and a note saying how many
    // pairs would narrow the interval to the 5 % band.
    let noisy = Arm {
        cpu: [4.5, 3.5, 4.6, 3.6, 4.4, 3.5],
        ..STEADY
    };
    let report = compare(&run(STEADY, noisy), DEFAULT_NOISE_FOR_TESTS);
    let cpu = row(&report, 40, AbMetric::CpuPerMpkt);
    let j = cpu.outcome.as_ref().expect("judged");
    assert_eq!(j.change, Change::NoChange, "{cpu:?}");
    let needed = j
        .pairs_to_resolve(cpu.threshold)
        .expect("wider than the band");
    let table = report.table();
    let line = format!("about {needed} pairs would narrow it to ±5 %");
    assert!(table.contains(&line), "{table}");
    // The steady metrics of the same point carry no such note.
    assert!(
        row(&report, 40, AbMetric::ZeroLossPps)
            .outcome
            .as_ref()
            .is_ok_and(|j| j.pairs_to_resolve(0.05).is_none())
    );
}

#[test]
fn latency_is_judged_at_the_interfaces_and_not_without_kernel_timestamps() {
    let mut results = run(STEADY, STEADY);
    let report = compare(&results, DEFAULT_NOISE_FOR_TESTS);
    let judged = row(&report, 40, AbMetric::LatencyP50Us);
    assert_eq!(judged.change(), Some(Change::NoChange), "{judged:?}");
    // Results written before the sinks took kernel timestamps: said, not judged on the
    // end-to-end figure (the two are not the same quantity).
    for p in &mut results.points {
        p.interface_latency_ns = None;
    }
    let report = compare(&results, DEFAULT_NOISE_FOR_TESTS);
    assert_not_judged(&report, 40, AbMetric::LatencyP50Us, "sinks' interfaces");
}

#[test]
fn a_tail_cut_by_more_than_half_is_faster_and_a_scattered_one_is_not_called() {
    let halved = Arm {
        tail_us: [45.0, 50.0, 48.0, 52.0, 47.0, 49.0],
        ..STEADY
    };
    let report = compare(&run(STEADY, halved), DEFAULT_NOISE_FOR_TESTS);
    let tail = row(&report, 40, AbMetric::LatencyP99Us);
    assert_eq!(tail.change(), Some(Change::Faster), "{tail:?}");
    assert!((tail.threshold - metrics::TAIL_NOISE).abs() < 1e-12);
    assert!(
        report.table().contains("iface p99 us"),
        "{}",
        report.table()
    );
    assert!(
        report
            .table()
            .contains("6 pairs; median change, sign-test CI"),
        "{}",
        report.table()
    );
    // The median did not move: no call there.
    let median = row(&report, 40, AbMetric::LatencyP50Us);
    assert_eq!(median.change(), Some(Change::NoChange), "{median:?}");
    // A tail 30 % higher, or scattered over 2x, is within the band.
    let higher = Arm {
        tail_us: STEADY.tail_us.map(|v| v * 1.3),
        ..STEADY
    };
    let scattered = Arm {
        tail_us: [60.0, 250.0, 90.0, 200.0, 70.0, 220.0],
        ..STEADY
    };
    for b in [higher, scattered] {
        let report = compare(&run(STEADY, b), DEFAULT_NOISE_FOR_TESTS);
        let tail = row(&report, 40, AbMetric::LatencyP99Us);
        assert_eq!(tail.change(), Some(Change::NoChange), "{tail:?}");
    }
}

#[test]
fn a_tail_on_four_pairs_is_not_judged_and_the_table_says_why() {
    let halved = Arm {
        tail_us: [45.0, 50.0, 48.0, 52.0, 47.0, 49.0],
        ..STEADY
    };
    let mut r = run(STEADY, halved);
    r.points.retain(|p| p.point.repeat < 4);
    r.refresh_aggregates();
    let report = compare(&r, DEFAULT_NOISE_FOR_TESTS);
    assert_not_judged(&report, 40, AbMetric::LatencyP99Us, "at least 6");
    // The other metrics are judged on the 4 pairs as before.
    assert_eq!(
        row(&report, 40, AbMetric::CpuPerMpkt).change(),
        Some(Change::NoChange)
    );
    let table = report.table();
    assert!(
        table.contains("p99 latency the larger of 5 % and 50 % on the median of at least 6 pairs"),
        "{table}"
    );
}

#[test]
fn cpu_is_not_judged_on_too_few_packets() {
    let report = compare(&run(STEADY, STEADY), DEFAULT_NOISE_FOR_TESTS);
    // 1 stream: 3000 packets and 0.012 s of process CPU per repeat.
    let cpu = row(&report, 1, AbMetric::CpuPerMpkt);
    assert!(
        cpu.outcome.as_ref().is_err_and(|e| e.contains("too few")),
        "{cpu:?}"
    );
    let proc_cpu = row(&report, 1, AbMetric::ProcessCpuPerMpkt);
    assert!(
        proc_cpu
            .outcome
            .as_ref()
            .is_err_and(|e| e.contains("ticks")),
        "{proc_cpu:?}"
    );
    // The zero-loss rate and delivered % do not depend on the fixed rate's packets.
    assert!(row(&report, 1, AbMetric::ZeroLossPps).outcome.is_ok());
    assert!(row(&report, 1, AbMetric::DeliveredPct).outcome.is_ok());
}

#[test]
fn a_handicapped_build_is_slower_in_each_direction() {
    let slow = Arm {
        cpu: STEADY.cpu.map(|v| v * 1.8),
        zero_loss: STEADY.zero_loss.map(|v| v * 0.6),
        latency_us: STEADY.latency_us.map(|v| v + 12.0),
        ..STEADY
    };
    let report = compare(&run(STEADY, slow), DEFAULT_NOISE_FOR_TESTS);
    for metric in [
        AbMetric::ZeroLossPps,
        AbMetric::CpuPerMpkt,
        AbMetric::ProcessCpuPerMpkt,
        AbMetric::LatencyP50Us,
    ] {
        assert_eq!(
            row(&report, 40, metric).change(),
            Some(Change::Slower),
            "{metric:?}"
        );
    }
    let zl = row(&report, 40, AbMetric::ZeroLossPps)
        .outcome
        .clone()
        .unwrap();
    assert!((zl.relative + 0.4).abs() < 1e-9, "{zl:?}");
    assert!(
        report.summary().starts_with("B vs A: SLOWER on 6"),
        "{}",
        report.summary()
    );
    // The other way round it is faster.
    let report = compare(&run(slow, STEADY), DEFAULT_NOISE_FOR_TESTS);
    assert_eq!(report.count(Change::Slower), 0);
    assert_eq!(report.count(Change::Faster), 6, "{}", report.table());
}

#[test]
fn zero_loss_lower_bounds_are_left_out() {
    let mut r = run(STEADY, STEADY);
    for p in r.points.iter_mut().filter(|p| p.point.repeat < 5) {
        if let Some(z) = p.zero_loss.as_mut() {
            z.bound = Some(SearchBound::Generator);
        }
    }
    let report = compare(&r, DEFAULT_NOISE_FOR_TESTS);
    assert_not_judged(&report, 40, AbMetric::ZeroLossPps, "lower bound");
}

#[test]
fn a_point_b_failed_is_not_judged() {
    let mut r = run(STEADY, STEADY);
    for p in r.points.iter_mut() {
        if p.point.system.build.as_deref() == Some(BUILD_B) && p.point.streams == 40 {
            *p = PointResult::empty(
                p.point.clone(),
                Status::Failed {
                    reason: "relay exited".into(),
                },
            );
        }
    }
    r.refresh_aggregates();
    let report = compare(&r, DEFAULT_NOISE_FOR_TESTS);
    let cpu = row(&report, 40, AbMetric::CpuPerMpkt);
    assert!(
        cpu.outcome
            .as_ref()
            .is_err_and(|e| e.contains("relay exited")),
        "{cpu:?}"
    );
    assert!(report.table().contains("not judged"));
}

#[test]
fn a_metric_the_scenario_does_not_measure_has_no_row() {
    let mut r = run(STEADY, STEADY);
    for p in r.points.iter_mut() {
        p.zero_loss = None;
    }
    let report = compare(&r, DEFAULT_NOISE_FOR_TESTS);
    assert_eq!(report.rows.len(), 2 * (AbMetric::ALL.len() - 1));
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.metric != AbMetric::ZeroLossPps)
    );
}

#[test]
fn a_run_without_builds_a_and_b_is_a_problem() {
    let s = Scenario::parse(
        "name = \"t\"\nsystems = [\"relay/pool\"]\nstreams = [10]\n",
        Path::new("t.toml"),
    )
    .unwrap();
    let r = Results::new(&s, Path::new("t.toml"), Environment::default());
    let report = compare(&r, DEFAULT_NOISE_FOR_TESTS);
    assert!(report.rows.is_empty());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
}

const DEFAULT_NOISE_FOR_TESTS: f64 = metrics::DEFAULT_NOISE;
