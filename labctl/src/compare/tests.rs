//! Synthetic baseline/current pairs. TEST FIXTURES ONLY: invented numbers, never shipped.

use super::*;
use crate::results::{Environment, PointResult, Status, Usage, ZeroLoss};
use crate::scenario::Scenario;
use std::path::Path;

/// One fixture system's per-repeat numbers.
#[derive(Clone, Copy)]
struct Arm {
    delivered: [f64; 3],
    cpu: [f64; 3],
    zero_loss: [f64; 3],
}

const STEADY: Arm = Arm {
    delivered: [100.0; 3],
    cpu: [4.0, 4.1, 3.9],
    zero_loss: [150e3, 152e3, 148e3],
};

/// Test fixture: a run with `relay/pool` and `relay/pool@base` at 10 streams, 3 repeats each.
fn run(current: Arm, base: Arm) -> Results {
    run_at("[10]", |p| {
        if p.system.build.is_some() {
            base
        } else {
            current
        }
    })
}

/// Test fixture: `relay/pool` and `relay/pool@base` at the stream counts `streams` (TOML), 3
/// repeats each, every point's numbers from `arm_of`.
fn run_at(streams: &str, arm_of: impl Fn(&crate::scenario::Point) -> Arm) -> Results {
    let s = Scenario::parse(
        &format!("name = \"ci\"\nsystems = [\"relay/pool\", \"relay/pool@base\"]\nstreams = {streams}\nrepeats = 3\n[builds.base]\n"),
        Path::new("ci.toml"),
    )
    .unwrap();
    let mut r = Results::new(&s, Path::new("ci.toml"), Environment::default());
    for p in s.points() {
        let (i, arm) = (p.repeat as usize, arm_of(&p));
        r.points.push(point(p, arm, i));
    }
    r.finished = Some("2026-11-29T00:00:00Z".into());
    r.refresh_aggregates();
    r
}

fn point(p: crate::scenario::Point, arm: Arm, i: usize) -> PointResult {
    let mut pr = PointResult::empty(p, Status::Ok);
    pr.offered = 100_000;
    pr.delivered = (arm.delivered[i] * 1000.0).round() as u64;
    pr.usage = Some(Usage {
        cpu_s: arm.cpu[i] * pr.delivered as f64 / 1e6,
        ..Usage::default()
    });
    pr.zero_loss = Some(ZeroLoss {
        pps: arm.zero_loss[i],
        lossy_pps: Some(arm.zero_loss[i] * 1.03),
        bound: None,
        resolution: Some(0.03),
        probes: 8,
        upper: None,
    });
    pr.derive();
    pr
}

fn ab(r: &Results) -> Comparison {
    compare_ab(
        r,
        &"relay/pool@base".parse().unwrap(),
        &"relay/pool".parse().unwrap(),
        &CompareTolerances::default(),
    )
}

fn verdict(c: &Comparison, metric: &str) -> Verdict {
    c.rows
        .iter()
        .find(|r| r.metric == metric)
        .unwrap_or_else(|| panic!("no {metric} row in {}", c.table()))
        .verdict
}

#[test]
fn identical_builds_pass() {
    let c = ab(&run(STEADY, STEADY));
    assert!(!c.fails(), "{}", c.table());
    assert_eq!(verdict(&c, "delivered %"), Verdict::Ok);
    assert_eq!(verdict(&c, "zero-loss pps"), Verdict::Ok);
    assert_eq!(verdict(&c, "CPU s/Mpkt"), Verdict::Ok);
}

#[test]
fn a_ten_percent_slower_build_fails_the_gate() {
    let slower = Arm {
        cpu: [4.4, 4.5, 4.3],
        zero_loss: [135e3, 137e3, 133e3],
        ..STEADY
    };
    let c = ab(&run(slower, STEADY));
    assert!(c.fails() && c.has_regression(), "{}", c.table());
    assert_eq!(verdict(&c, "CPU s/Mpkt"), Verdict::Regression);
    assert_eq!(verdict(&c, "zero-loss pps"), Verdict::Regression);
    assert!(c.table().contains("REGRESSION"));
}

#[test]
fn a_small_or_noisy_change_passes() {
    // +3 % CPU: real, but under the 5 % minimum effect.
    let c = ab(&run(
        Arm {
            cpu: [4.12, 4.22, 4.02],
            ..STEADY
        },
        STEADY,
    ));
    assert_eq!(verdict(&c, "CPU s/Mpkt"), Verdict::Ok, "{}", c.table());
    // +8 % on the mean, but the repeats spread too much to tell.
    let c = ab(&run(
        Arm {
            cpu: [3.2, 5.2, 4.56],
            ..STEADY
        },
        STEADY,
    ));
    assert_eq!(verdict(&c, "CPU s/Mpkt"), Verdict::Ok, "{}", c.table());
}

#[test]
fn delivered_drop_beyond_the_tolerance_fails() {
    let lossy = Arm {
        delivered: [95.0, 95.2, 94.9],
        ..STEADY
    };
    let c = ab(&run(lossy, STEADY));
    assert_eq!(
        verdict(&c, "delivered %"),
        Verdict::Regression,
        "{}",
        c.table()
    );
}

#[test]
fn an_improvement_is_reported_not_failed() {
    let faster = Arm {
        cpu: [3.0, 3.1, 2.9],
        zero_loss: [200e3, 202e3, 198e3],
        ..STEADY
    };
    let c = ab(&run(faster, STEADY));
    assert!(!c.fails(), "{}", c.table());
    assert_eq!(verdict(&c, "CPU s/Mpkt"), Verdict::Improved);
    assert_eq!(verdict(&c, "zero-loss pps"), Verdict::Improved);
}

#[test]
fn a_missing_point_or_metric_fails() {
    let base = run(STEADY, STEADY);
    // Cross-run: the current run lacks every relay/pool point.
    let mut cur = base.clone();
    cur.points.retain(|p| p.point.system.build.is_some());
    cur.refresh_aggregates();
    let c = compare(&base, &cur, &CompareTolerances::default());
    assert!(c.fails(), "{}", c.table());
    assert!(c.rows.iter().any(|r| r.verdict == Verdict::Missing));

    // The current run lacks the zero-loss figure.
    let mut cur = base.clone();
    for p in &mut cur.points {
        p.zero_loss = None;
    }
    cur.refresh_aggregates();
    let c = compare(&base, &cur, &CompareTolerances::default());
    assert_eq!(
        verdict(&c, "zero-loss pps"),
        Verdict::Missing,
        "{}",
        c.table()
    );
    assert!(c.fails());

    // A/B: the current system failed at every repeat.
    let mut r = base.clone();
    for p in r
        .points
        .iter_mut()
        .filter(|p| p.point.system.build.is_none())
    {
        *p = PointResult::empty(
            p.point.clone(),
            Status::Failed {
                reason: "relay exited".into(),
            },
        );
    }
    r.refresh_aggregates();
    let c = ab(&r);
    assert!(c.fails(), "{}", c.table());
}

#[test]
fn an_interrupted_run_fails() {
    let mut r = run(STEADY, STEADY);
    r.interrupted = true;
    r.points.truncate(3);
    r.refresh_aggregates();
    let c = ab(&r);
    assert!(c.fails(), "{}", c.table());
    assert!(c.problems[0].contains("interrupted"), "{:?}", c.problems);
    let c = compare(&run(STEADY, STEADY), &r, &CompareTolerances::default());
    assert!(c.fails());
}

#[test]
fn a_generator_bound_current_point_is_unmeasurable() {
    let mut r = run(STEADY, STEADY);
    for p in r
        .points
        .iter_mut()
        .filter(|p| p.point.system.build.is_none())
    {
        p.status = Status::GeneratorBound {
            reason: "sender reached 40 %".into(),
        };
    }
    r.refresh_aggregates();
    let c = ab(&r);
    assert_eq!(
        verdict(&c, "delivered %"),
        Verdict::Unmeasurable,
        "{}",
        c.table()
    );
    assert!(c.fails());
}

#[test]
fn generator_capped_zero_loss_figures_are_lower_bounds() {
    let mut r = run(
        Arm {
            zero_loss: [120e3, 121e3, 119e3],
            ..STEADY
        },
        STEADY,
    );
    for p in r
        .points
        .iter_mut()
        .filter(|p| p.point.system.build.is_none())
    {
        if let Some(z) = p.zero_loss.as_mut() {
            z.bound = Some(SearchBound::Generator);
        }
    }
    r.refresh_aggregates();
    // The current figure is a generator-capped 120k against a real 150k: cannot tell.
    let c = ab(&r);
    assert_eq!(
        verdict(&c, "zero-loss pps"),
        Verdict::Unmeasurable,
        "{}",
        c.table()
    );
}

#[test]
fn a_comparison_that_judged_nothing_fails() {
    // The baseline build was skipped (its binary missing): no metric can be judged.
    let mut r = run(STEADY, STEADY);
    for p in r
        .points
        .iter_mut()
        .filter(|p| p.point.system.build.is_some())
    {
        *p = PointResult::empty(
            p.point.clone(),
            Status::Skipped {
                reason: "relay binary /x does not exist".into(),
            },
        );
    }
    r.refresh_aggregates();
    let c = ab(&r);
    assert!(c.fails(), "{}", c.table());
    assert!(
        c.problems[0].contains("no metric was judged"),
        "{:?}",
        c.problems
    );
}

#[test]
fn process_cpu_below_the_tick_resolution_is_not_judged() {
    // The tc data plane's relay process: hundredths of a second per Mpkt, 0-3 ms per repeat.
    let kernel_work = Arm {
        cpu: [0.02, 0.01, 0.03],
        ..STEADY
    };
    let base = Arm {
        cpu: [0.01, 0.02, 0.01],
        ..STEADY
    };
    let c = ab(&run(kernel_work, base));
    assert_eq!(verdict(&c, "proc CPU s/Mpkt"), Verdict::NotJudged);
    assert!(c.table().contains("too few 10 ms ticks"), "{}", c.table());
    // Enough of it (0.4 s per repeat): judged as before.
    let c = ab(&run(STEADY, STEADY));
    assert_eq!(verdict(&c, "proc CPU s/Mpkt"), Verdict::Ok);
}

#[test]
fn a_canary_caught_at_one_point_of_two_names_the_other() {
    let slower = Arm {
        cpu: [4.4, 4.5, 4.3],
        ..STEADY
    };
    let r = run_at("[1, 10]", |p| {
        if p.system.build.is_none() && p.streams == 10 {
            slower
        } else {
            STEADY
        }
    });
    let c = ab(&r);
    assert!(c.has_regression(), "{}", c.table());
    let powerless = c.points_without_regression();
    assert_eq!(powerless.len(), 1, "{powerless:?}\n{}", c.table());
    assert!(powerless[0].contains("streams=1 "), "{powerless:?}");

    let caught_everywhere = ab(&run(slower, STEADY));
    assert!(caught_everywhere.points_without_regression().is_empty());
}

#[test]
fn more_checks_widen_each_interval_so_the_family_keeps_its_confidence() {
    // +10 % CPU per pair, spread 8..12 %: significant when one point is judged, not when two
    // points (twice the checks, each with a wider interval) are.
    let slower = Arm {
        cpu: [4.0 * 1.08, 4.1 * 1.10, 3.9 * 1.12],
        ..STEADY
    };
    let arm_of = |p: &crate::scenario::Point| {
        if p.system.build.is_some() {
            STEADY
        } else {
            slower
        }
    };
    let one = ab(&run_at("[10]", arm_of));
    let two = ab(&run_at("[10, 40]", arm_of));
    let cpu_at_10 = |c: &Comparison| {
        c.rows
            .iter()
            .find(|r| r.metric == "CPU s/Mpkt" && r.point.contains("streams=10 "))
            .cloned()
            .unwrap_or_else(|| panic!("no CPU row at 10 streams in {}", c.table()))
    };
    let (alone, in_two) = (cpu_at_10(&one), cpu_at_10(&two));
    assert_eq!(alone.verdict, Verdict::Regression, "{}", one.table());
    assert_eq!(in_two.verdict, Verdict::Ok, "{}", two.table());
    let width = |r: &Row| r.interval.map(|(lo, hi)| hi - lo).unwrap_or_default();
    assert!(width(&in_two) > width(&alone), "{alone:?} {in_two:?}");
    // zero-loss, CPU and process CPU at each point.
    assert_eq!(one.family.checks, 3, "{}", one.table());
    assert_eq!(two.family.checks, 6, "{}", two.table());
    assert!((two.family.check_confidence - (1.0 - 0.05 / 6.0)).abs() < 1e-12);
    assert!(
        two.table().contains("each of the 6 relative checks"),
        "{}",
        two.table()
    );
}
