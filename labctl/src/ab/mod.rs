//! `labctl ab`: is build B of the relay faster or slower than build A, and by how much?
//!
//! Both builds run in one sweep as `relay/pool@a` and `relay/pool@b` (any relay kind works:
//! every system of build `a` is paired with the same kind of build `b`), taking turns at every
//! point and every repeat (`Scenario::points`), so drift of the machine hits both alike.
//!
//! Method. For each point and metric ([`metrics`]), repeat i of A and repeat i of B - measured
//! seconds apart - form a pair; the relative change of B is the mean of the per-pair ratios
//! B_i / A_i - 1, and its 95 % confidence interval is Student's t on those ratios
//! ([`crate::stats::paired_relative_difference`], the same statistic as `compare --ab`).
//! Pairing removes the drift that hits both sides of a pair; a Welch interval of the difference
//! of means over A's mean would treat the drift as noise and need more repeats. The verdict
//! ([`verdict`]) is criterion's rule: faster or slower only when the whole interval lies beyond
//! the metric's noise threshold (which implies significance at 95 %), otherwise "no change
//! detected". The threshold keeps false alarms rare across the ten or so checks of a run: a
//! same-against-same comparison calls a change only if all its pairs lean the same way by more
//! than the threshold.

pub mod metrics;
pub mod rev;
pub mod setup;
mod table;
pub mod verdict;

pub use metrics::AbMetric;
pub use verdict::{Change, Judgement};

use crate::results::{Aggregate, PointResult, Results};
use crate::scenario::{PointKey, System};
use crate::stats::Stat;
use std::collections::BTreeMap;

/// Build names `labctl ab` gives its two binaries in a scenario.
pub const BUILD_A: &str = "a";
pub const BUILD_B: &str = "b";

/// One metric of one point: A against B.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The point without its system (streams, fan-out, variant, rate, size).
    pub point: String,
    /// The relay kind compared (`relay/pool`).
    pub system: String,
    pub metric: AbMetric,
    /// Means over the repeats that were judged.
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// Noise threshold applied (fraction).
    pub threshold: f64,
    /// The judgement, or why there is none.
    pub outcome: Result<Judgement, String>,
    /// Pairs left out and why.
    pub note: String,
}

impl Row {
    pub fn change(&self) -> Option<Change> {
        self.outcome.as_ref().ok().map(|j| j.change)
    }
}

/// The whole A/B comparison of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct AbReport {
    pub rows: Vec<Row>,
    /// Noise threshold of the rate, CPU and latency metrics (fraction).
    pub noise: f64,
    /// Run-level problems (interrupted run, nothing to pair).
    pub problems: Vec<String>,
}

impl AbReport {
    /// Rows with a verdict of `change`.
    pub fn count(&self, change: Change) -> usize {
        self.rows
            .iter()
            .filter(|r| r.change() == Some(change))
            .count()
    }

    /// Rows that have a verdict at all.
    pub fn judged(&self) -> usize {
        self.rows.iter().filter(|r| r.outcome.is_ok()).count()
    }
}

/// Compares build `a` with build `b` over every point of `results`.
pub fn compare(results: &Results, noise: f64) -> AbReport {
    let mut report = AbReport {
        rows: Vec::new(),
        noise,
        problems: Vec::new(),
    };
    if results.interrupted {
        report
            .problems
            .push("the run was interrupted: only its finished points are compared".to_owned());
    }
    for a_system in results
        .systems()
        .into_iter()
        .filter(|s| s.build.as_deref() == Some(BUILD_A))
    {
        let b_system = System {
            build: Some(BUILD_B.to_owned()),
            ..a_system.clone()
        };
        for a in results.aggregates_of(&a_system) {
            let key = PointKey {
                system: b_system.clone(),
                ..a.key.clone()
            };
            let b = results.aggregates.iter().find(|x| x.key == key);
            report.rows.extend(compare_point(results, a, b, noise));
        }
    }
    if report.rows.is_empty() {
        report.problems.push(format!(
            "no point of a relay build `{BUILD_A}` with its build `{BUILD_B}` in the run"
        ));
    }
    report
}

/// The point's label without the system.
fn point_label(key: &PointKey) -> String {
    format!(
        "streams={} fanout={} variant={} rate={}pps size={}B",
        key.streams, key.fanout, key.variant, key.rate_pps, key.size
    )
}

/// Every metric of one point.
fn compare_point(results: &Results, a: &Aggregate, b: Option<&Aggregate>, noise: f64) -> Vec<Row> {
    let scenario = &results.scenario.definition;
    let a_repeats = counted(results, a);
    let b_repeats = b.map(|b| counted(results, b)).unwrap_or_default();
    // A metric the scenario does not measure (no zero-loss search) has no row.
    let measured = |metric: AbMetric| {
        a_repeats
            .values()
            .chain(b_repeats.values())
            .any(|p| metric.value(p).is_some() || metric.unresolved(p).is_some())
    };
    AbMetric::ALL
        .iter()
        .filter(|&&metric| measured(metric) || a.measured() == 0)
        .map(|&metric| {
            let mut row = Row {
                point: point_label(&a.key),
                system: a.key.system.kind.to_string(),
                metric,
                a: None,
                b: None,
                threshold: metric.threshold(noise, scenario),
                outcome: Err(String::new()),
                note: String::new(),
            };
            row.outcome = match point_problem(metric, a, b) {
                Some(problem) => Err(problem),
                None => judge_metric(&mut row, &a_repeats, &b_repeats),
            };
            row
        })
        .collect()
}

/// Why a point has no verdict on `metric` as a whole, if it has none.
fn point_problem(metric: AbMetric, a: &Aggregate, b: Option<&Aggregate>) -> Option<String> {
    let Some(b) = b else {
        return Some("B has no such point".to_owned());
    };
    for (side, x) in [("A", a), ("B", b)] {
        if x.measured() == 0 {
            return Some(format!(
                "{side} did not measure it: {}",
                x.problems.join("; ")
            ));
        }
        if metric.needs_valid_point() && !x.is_valid() {
            return Some(format!(
                "{side}'s point was bound by the load generator or the sink"
            ));
        }
    }
    None
}

/// The repeats of a point its numbers come from, by repeat index.
fn counted<'r>(results: &'r Results, agg: &Aggregate) -> BTreeMap<u32, &'r PointResult> {
    let repeats: Vec<u32> = results
        .samples(agg, |_| Some(0.0))
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    results
        .points
        .iter()
        .filter(|p| p.point.key() == agg.key && repeats.contains(&p.point.repeat))
        .map(|p| (p.point.repeat, p))
        .collect()
}

/// Pairs the repeats measured on both sides, leaves out those that cannot resolve the metric
/// (saying why in the note) and judges the rest.
fn judge_metric(
    row: &mut Row,
    a: &BTreeMap<u32, &PointResult>,
    b: &BTreeMap<u32, &PointResult>,
) -> Result<Judgement, String> {
    let metric = row.metric;
    let mut pairs = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for (repeat, pa) in a {
        let Some(pb) = b.get(repeat) else { continue };
        if let Some(why) = metric.unresolved(pa).or_else(|| metric.unresolved(pb)) {
            left_out.push(why);
            continue;
        }
        if let (Some(va), Some(vb)) = (metric.value(pa), metric.value(pb)) {
            pairs.push((va, vb));
        }
    }
    let mean = |values: Vec<f64>| Stat::of(&values).map(|s| s.mean);
    row.a = mean(pairs.iter().map(|p| p.0).collect());
    row.b = mean(pairs.iter().map(|p| p.1).collect());
    if let Some(first) = left_out.first() {
        row.note = format!("{} pair(s) left out: {first}", left_out.len());
    }
    if pairs.len() < 2 && !left_out.is_empty() {
        return Err(left_out[0].clone());
    }
    if metric.is_tail() {
        verdict::judge_tail(&pairs, metric.better(), row.threshold)
    } else {
        verdict::judge(&pairs, metric.better(), row.threshold)
    }
}

#[cfg(test)]
mod tests;
