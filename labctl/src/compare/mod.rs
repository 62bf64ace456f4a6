//! The regression gate: this project's relay judged on its primary metrics - delivered %, the
//! zero-loss rate, CPU per packet - either across two runs (`compare BASELINE CURRENT`) or, in
//! one run, between two builds measured side by side with interleaved repeats (`compare --ab`).
//!
//! Same-run A/B is what CI uses: absolute rates and CPU times differ from machine to machine and
//! drift on a shared one, so a stored baseline from another machine cannot be trusted, while
//! two builds measured in turn on the same machine see the same machine. Cross-run comparison
//! is for two runs on one machine (before / after on a laptop).
//!
//! A comparison makes several checks (every metric of every point); each has its own chance of
//! calling noise a regression, and the gate fails on any of them. So the checks are judged as a
//! family: with m relative checks (zero-loss rate, CPU per packet) that have an interval, each
//! interval is at 1 - (1 - c)/m, c = `family_confidence_pct` (95 %), which keeps the chance that
//! unchanged code fails the comparison at most 1 - c (Bonferroni), however many points and
//! metrics it has.
//!
//! The gate fails (exit 3) on a regression ([`judge`]), on a point or metric the baseline has
//! and the current run lacks, on a current point bound by the load generator or the sink, and
//! on an interrupted run. Only `relay/*` systems are judged; socat, kernel and direct are the
//! baselines' context.

pub mod judge;
#[cfg(test)]
mod tests;

pub use judge::{Metric, Row, Verdict};

use crate::ab::metrics::MIN_PROCESS_CPU_S;
use crate::results::{Aggregate, PointResult, Results, SearchBound};
use crate::scenario::{CompareTolerances, PointKey, System};
use judge::{Rules, Side};
use std::fmt::Write as _;

/// Exit code of `labctl compare` when the gate fails (`main` maps the command's outcome to it).
pub const REGRESSION_EXIT_CODE: u8 = 3;

/// The whole comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub rows: Vec<Row>,
    pub tolerances: CompareTolerances,
    /// Run-level reasons to fail (interrupted run, nothing to judge).
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub family: Family,
}

/// The relative checks judged together (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Family {
    /// Relative checks with an interval.
    pub checks: usize,
    /// Confidence of each check's interval (0.95 for 95 %).
    pub check_confidence: f64,
}

impl Family {
    /// No check yet: each at the family's confidence.
    fn of_none(tol: &CompareTolerances) -> Family {
        Family {
            checks: 0,
            check_confidence: tol.family_confidence_pct / 100.0,
        }
    }
}

impl Comparison {
    /// True when the gate fails: a failing row or a run-level problem.
    pub fn fails(&self) -> bool {
        !self.problems.is_empty() || self.rows.iter().any(|r| r.verdict.fails())
    }

    /// True when some row is a regression proper (what `--expect-regression` looks for).
    pub fn has_regression(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Regression)
    }

    /// The compared points (in order) where no row is a regression: for a deliberately slowed
    /// build, the points where the gate showed no power (`--expect-regression` needs none).
    pub fn points_without_regression(&self) -> Vec<&str> {
        let mut points: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !points.contains(&row.point.as_str()) {
                points.push(&row.point);
            }
        }
        points.retain(|point| {
            !self
                .rows
                .iter()
                .any(|r| r.point == *point && r.verdict == Verdict::Regression)
        });
        points
    }

    /// A side-by-side table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let width = self
            .rows
            .iter()
            .map(|r| r.point.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(
            out,
            "{:<width$}  {:<14} {:>12} {:>12}  {:<13} note",
            "point", "metric", "baseline", "current", "verdict"
        );
        let num = |v: Option<f64>| v.map_or("-".to_owned(), format_value);
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<width$}  {:<14} {:>12} {:>12}  {:<13} {}",
                r.point,
                r.metric,
                num(r.baseline),
                num(r.current),
                r.verdict.label(),
                r.note
            );
        }
        let failing = self.rows.iter().filter(|r| r.verdict.fails()).count();
        let t = &self.tolerances;
        let _ = writeln!(
            out,
            "\n{} checks, {failing} failing; a regression is a worsening of >= {} % that is significant (>= {} % with one repeat), or a drop of delivered % by more than {} points",
            self.rows.len(),
            t.min_effect_pct,
            t.regression_pct,
            t.delivered_drop_pct
        );
        let _ = writeln!(
            out,
            "significant: the interval excludes 0; each of the {} relative checks with an interval at {} %, so that unchanged code passes them all with at least {} % (Bonferroni)",
            self.family.checks,
            judge::percent(self.family.check_confidence),
            judge::percent(t.family_confidence_pct / 100.0)
        );
        for p in &self.problems {
            let _ = writeln!(out, "FAIL: {p}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        out
    }
}

fn format_value(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// True for the systems the gate judges: this project's relay.
fn is_gated(system: &System) -> bool {
    system.kind.is_relay()
}

/// Compares two runs: every gated point of `baseline` against the same point of `current`.
pub fn compare(
    baseline: &Results,
    current: &Results,
    tolerances: &CompareTolerances,
) -> Comparison {
    let mut c = Comparison {
        rows: Vec::new(),
        tolerances: tolerances.clone(),
        problems: run_problems(&[("baseline", baseline), ("current", current)]),
        warnings: Vec::new(),
        family: Family::of_none(tolerances),
    };
    if baseline.scenario.name != current.scenario.name {
        c.warnings.push(format!(
            "scenarios differ (baseline {:?}, current {:?})",
            baseline.scenario.name, current.scenario.name
        ));
    }
    let judge_all = |rules: Rules<'_>| {
        let mut rows = Vec::new();
        for base in baseline
            .aggregates
            .iter()
            .filter(|a| is_gated(&a.key.system))
        {
            let point = base.key.to_string();
            match current.aggregates.iter().find(|a| a.key == base.key) {
                Some(cur) => rows.extend(judge_point(&point, baseline, base, current, cur, rules)),
                None => rows.push(missing_point(&point)),
            }
        }
        rows
    };
    (c.rows, c.family) = judge_as_a_family(tolerances, false, judge_all);
    if !baseline.aggregates.iter().any(|a| is_gated(&a.key.system)) {
        c.problems
            .push("the baseline has no relay/* point: nothing to judge".to_owned());
    }
    require_a_judgement(&mut c);
    c
}

/// A comparison that judged nothing (every baseline point skipped or unmeasured) fails: a gate
/// that checked nothing has not passed.
fn require_a_judgement(c: &mut Comparison) {
    let judged = c.rows.iter().any(|r| r.verdict != Verdict::NotJudged);
    if !judged && c.problems.is_empty() {
        c.problems.push(
            "no metric was judged (the baseline measured nothing comparable): nothing passed"
                .to_owned(),
        );
    }
}

/// Compares two systems of one run (same-run A/B): every point of `baseline_system` against the
/// same point of `current_system`.
pub fn compare_ab(
    run: &Results,
    baseline_system: &System,
    current_system: &System,
    tolerances: &CompareTolerances,
) -> Comparison {
    let mut c = Comparison {
        rows: Vec::new(),
        tolerances: tolerances.clone(),
        problems: run_problems(&[("run", run)]),
        warnings: Vec::new(),
        family: Family::of_none(tolerances),
    };
    let bases: Vec<&Aggregate> = run.aggregates_of(baseline_system).collect();
    if bases.is_empty() {
        c.problems.push(format!(
            "the run has no {baseline_system} point: nothing to compare against"
        ));
    }
    let judge_all = |rules: Rules<'_>| {
        let mut rows = Vec::new();
        for base in &bases {
            let key = PointKey {
                system: current_system.clone(),
                ..base.key.clone()
            };
            let point = format!("{current_system} vs {}", base.key);
            match run.aggregates.iter().find(|a| a.key == key) {
                Some(cur) => rows.extend(judge_point(&point, run, base, run, cur, rules)),
                None => rows.push(missing_point(&point)),
            }
        }
        rows
    };
    (c.rows, c.family) = judge_as_a_family(tolerances, true, judge_all);
    require_a_judgement(&mut c);
    c
}

/// Judges every check once at the family's confidence to count the relative checks that get an
/// interval (m), then, for m > 1, again with each interval at 1 - (1 - c)/m (Bonferroni).
fn judge_as_a_family(
    tol: &CompareTolerances,
    paired: bool,
    judge_all: impl Fn(Rules<'_>) -> Vec<Row>,
) -> (Vec<Row>, Family) {
    let family = tol.family_confidence_pct / 100.0;
    let rules = |confidence| Rules {
        tol,
        paired,
        confidence,
    };
    let rows = judge_all(rules(family));
    let checks = rows.iter().filter(|r| is_relative_check(r)).count();
    if checks <= 1 {
        return (
            rows,
            Family {
                checks,
                check_confidence: family,
            },
        );
    }
    let check_confidence = 1.0 - (1.0 - family) / checks as f64;
    let rows = judge_all(rules(check_confidence));
    (
        rows,
        Family {
            checks,
            check_confidence,
        },
    )
}

/// A judged relative check (zero-loss rate, CPU per packet) with an interval.
fn is_relative_check(row: &Row) -> bool {
    row.metric != Metric::DeliveredPct.label()
        && row.interval.is_some()
        && matches!(
            row.verdict,
            Verdict::Ok | Verdict::Improved | Verdict::Regression
        )
}

fn run_problems(runs: &[(&str, &Results)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (what, r) in runs {
        if r.interrupted {
            problems.push(format!(
                "the {what} run was interrupted ({} points): its verdicts are incomplete",
                r.points.len()
            ));
        } else if r.finished.is_none() {
            problems.push(format!("the {what} run did not finish"));
        }
    }
    problems
}

fn missing_point(point: &str) -> Row {
    Row {
        point: point.to_owned(),
        metric: "point",
        baseline: None,
        current: None,
        worse: None,
        interval: None,
        verdict: Verdict::Missing,
        note: "in the baseline, not in the current run (not measured, or failed)".to_owned(),
    }
}

/// Every metric of one point pair.
fn judge_point(
    point: &str,
    base_run: &Results,
    base: &Aggregate,
    cur_run: &Results,
    cur: &Aggregate,
    rules: Rules<'_>,
) -> Vec<Row> {
    if base.measured() > 0 && cur.measured() == 0 {
        let mut row = missing_point(point);
        row.note = format!(
            "the current run did not measure it: {}",
            cur.problems.join("; ")
        );
        return vec![row];
    }
    Metric::ALL
        .iter()
        .filter_map(|&metric| {
            if metric == Metric::ProcessCpuPerMpkt
                && let Some(row) = too_little_process_cpu(point, [base_run, cur_run], [base, cur])
            {
                return Some(row);
            }
            let f = metric_of(metric);
            let base_samples = base_run.samples(base, f);
            let cur_samples = cur_run.samples(cur, f);
            judge::judge(
                point,
                metric,
                side(metric, base, &base_samples),
                side(metric, cur, &cur_samples),
                rules,
            )
        })
        .collect()
}

/// One side of a metric's check: its samples, whether the point was valid (a zero-loss search
/// judges its own bounds), whether the value is only a generator-capped lower bound.
fn side<'a>(metric: Metric, a: &Aggregate, samples: &'a [(u32, f64)]) -> Side<'a> {
    Side {
        samples,
        valid: a.is_valid() || metric == Metric::ZeroLossPps,
        lower_bound: metric == Metric::ZeroLossPps
            && a.zero_loss_bound == Some(SearchBound::Generator),
    }
}

/// A "not judged" row for the process CPU per packet when a repeat of either side had less
/// process CPU than 10 ms ticks resolve ([`MIN_PROCESS_CPU_S`]): the system's work is the
/// kernel's (the tc data plane, kernel routing), which the CPU s/Mpkt row judges.
fn too_little_process_cpu(
    point: &str,
    runs: [&Results; 2],
    points: [&Aggregate; 2],
) -> Option<Row> {
    let cpu_s = |p: &PointResult| p.usage.map(|u| u.cpu_s);
    let least = runs
        .iter()
        .zip(points)
        .flat_map(|(run, agg)| run.samples(agg, cpu_s))
        .map(|(_, s)| s)
        .fold(f64::INFINITY, f64::min);
    if least >= MIN_PROCESS_CPU_S {
        return None;
    }
    let mean = |i: usize| {
        let values: Vec<f64> = runs[i]
            .samples(points[i], |p| p.process_cpu_s_per_mpkt)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        crate::stats::Stat::of(&values).map(|s| s.mean)
    };
    Some(Row {
        point: point.to_owned(),
        metric: Metric::ProcessCpuPerMpkt.label(),
        baseline: mean(0),
        current: mean(1),
        worse: None,
        interval: None,
        verdict: Verdict::NotJudged,
        note: format!(
            "{least:.3} s of process CPU in a repeat: too few 10 ms ticks (needs \
             {MIN_PROCESS_CPU_S} s); the work is the kernel's, judged by CPU s/Mpkt"
        ),
    })
}

fn metric_of(metric: Metric) -> fn(&PointResult) -> Option<f64> {
    match metric {
        Metric::DeliveredPct => |p| p.delivered_pct,
        Metric::ZeroLossPps => |p| p.zero_loss.map(|z| z.pps),
        Metric::CpuPerMpkt => |p| p.cpu_s_per_mpkt,
        Metric::ProcessCpuPerMpkt => |p| p.process_cpu_s_per_mpkt,
    }
}
