//! The regression gate: a current `results.json` against a stored baseline, noise-aware.
//!
//! Judged only on quantities that do not depend on how fast the machine is:
//! - **delivered %** per point: an absolute drop beyond `delivered_drop_pct` plus the noise (half
//!   the min..max spread of the repeats, baseline and current) is a regression; a point that
//!   measured in the baseline and failed now is a regression;
//! - **ratios against a same-run baseline**: a system's CPU seconds per million packets divided by
//!   the load generator's own CPU per million packets at the `direct` point of the same run (same
//!   streams, rate, size, variant) — lower is better; and its zero-loss throughput divided by the
//!   same run's `direct` zero-loss throughput — higher is better. A relative worsening beyond
//!   `ratio_tolerance` plus the relative noise of both runs is a regression.
//!
//! Absolute times and rates alone are never judged.

use crate::results::{Aggregate, Results, Stat};
use crate::scenario::{CompareTolerances, PointKey, SystemKind};
use std::fmt::Write as _;

/// Exit code of `labctl compare` when it finds a regression.
pub const REGRESSION_EXIT_CODE: i32 = 3;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within tolerance.
    Ok,
    /// Beyond the tolerance but inside the repeats' noise: not a regression.
    WithinNoise,
    /// Better than the baseline beyond tolerance.
    Improved,
    /// Worse beyond tolerance and noise.
    Regression,
    /// Not judged (missing or skipped on one side); shown for information.
    NotJudged,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::WithinNoise => "within noise",
            Verdict::Improved => "improved",
            Verdict::Regression => "REGRESSION",
            Verdict::NotJudged => "not judged",
        }
    }
}

/// One line of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub point: String,
    pub metric: &'static str,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// Largest allowed worsening (tolerance + noise), in the metric's unit (percentage points for
    /// delivered %, relative fraction for ratios).
    pub allowed: Option<f64>,
    pub verdict: Verdict,
    pub note: String,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub rows: Vec<Row>,
    pub tolerances: CompareTolerances,
    pub warnings: Vec<String>,
}

impl Comparison {
    /// True when any row is a regression.
    pub fn has_regression(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Regression)
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
            "{:<width$}  {:<22} {:>12} {:>12} {:>10}  {:<12} note",
            "point", "metric", "baseline", "current", "allowed", "verdict"
        );
        let num = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<width$}  {:<22} {:>12} {:>12} {:>10}  {:<12} {}",
                r.point,
                r.metric,
                num(r.baseline),
                num(r.current),
                num(r.allowed),
                r.verdict.label(),
                r.note
            );
        }
        let regressions = self
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .count();
        let _ = writeln!(
            out,
            "\n{} checks, {} regression(s); tolerances: delivered drop {} points, ratio {} %",
            self.rows.len(),
            regressions,
            self.tolerances.delivered_drop_pct,
            self.tolerances.ratio_tolerance * 100.0
        );
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        out
    }
}

/// Compares `current` with `baseline` under `tolerances`.
pub fn compare(
    baseline: &Results,
    current: &Results,
    tolerances: &CompareTolerances,
) -> Comparison {
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    if baseline.scenario.name != current.scenario.name {
        warnings.push(format!(
            "scenarios differ (baseline {:?}, current {:?}); only points present in both are judged",
            baseline.scenario.name, current.scenario.name
        ));
    }
    for base in &baseline.aggregates {
        let point = base.key.to_string();
        let Some(cur) = current.aggregates.iter().find(|a| a.key == base.key) else {
            warnings.push(format!("{point}: in the baseline, not in the current run"));
            continue;
        };
        rows.push(delivered_row(&point, base, cur, tolerances));
        if base.key.system != SystemKind::Direct {
            if let Some(row) = ratio_row(
                &point,
                "CPU/Mpkt vs loadgen",
                cpu_ratio(baseline, base),
                cpu_ratio(current, cur),
                Better::Lower,
                tolerances,
            ) {
                rows.push(row);
            }
            if let Some(row) = ratio_row(
                &point,
                "zero-loss vs direct",
                zero_loss_ratio(baseline, base),
                zero_loss_ratio(current, cur),
                Better::Higher,
                tolerances,
            ) {
                rows.push(row);
            }
        }
    }
    Comparison {
        rows,
        tolerances: tolerances.clone(),
        warnings,
    }
}

fn delivered_row(point: &str, base: &Aggregate, cur: &Aggregate, tol: &CompareTolerances) -> Row {
    let mut row = Row {
        point: point.to_owned(),
        metric: "delivered %",
        baseline: base.delivered_pct.map(|s| s.mean),
        current: cur.delivered_pct.map(|s| s.mean),
        allowed: None,
        verdict: Verdict::NotJudged,
        note: String::new(),
    };
    match (base.delivered_pct, cur.delivered_pct) {
        (Some(b), Some(c)) => {
            let noise = b.half_range() + c.half_range();
            let drop = b.mean - c.mean;
            row.allowed = Some(tol.delivered_drop_pct + noise);
            row.verdict = if drop <= tol.delivered_drop_pct {
                if -drop > tol.delivered_drop_pct + noise {
                    Verdict::Improved
                } else {
                    Verdict::Ok
                }
            } else if drop <= tol.delivered_drop_pct + noise {
                Verdict::WithinNoise
            } else {
                Verdict::Regression
            };
            row.note = format!("drop {drop:.3} points, noise {noise:.3}");
        }
        (Some(_), None) if cur.ok == 0 && !cur.problems.is_empty() => {
            let skipped_only = cur.skipped == cur.repeats;
            row.verdict = if skipped_only {
                Verdict::NotJudged
            } else {
                Verdict::Regression
            };
            row.note = format!(
                "{} now: {}",
                if skipped_only { "skipped" } else { "failed" },
                cur.problems.join("; ")
            );
        }
        (Some(_), None) => {
            row.verdict = Verdict::Regression;
            row.note = "no delivered % in the current run".to_owned();
        }
        (None, _) => {
            row.note = "no delivered % in the baseline".to_owned();
        }
    }
    row
}

/// Same-run reference point: the `direct` system at the same streams, rate, size and variant.
fn direct_of<'a>(run: &'a Results, key: &PointKey) -> Option<&'a Aggregate> {
    run.aggregates.iter().find(|a| {
        a.key.system == SystemKind::Direct
            && a.key.streams == key.streams
            && a.key.rate_pps == key.rate_pps
            && a.key.size == key.size
            && a.key.variant == key.variant
            && a.key.fanout == key.fanout
    })
}

/// (ratio, relative noise) of the system's CPU per Mpkt over the direct point's load-generator
/// CPU per Mpkt.
fn cpu_ratio(run: &Results, a: &Aggregate) -> Option<(f64, f64)> {
    let num = a.cpu_s_per_mpkt?;
    let den = direct_of(run, &a.key)?.loadgen_cpu_s_per_mpkt?;
    ratio(num, den)
}

/// (ratio, relative noise) of the system's zero-loss throughput over direct's.
fn zero_loss_ratio(run: &Results, a: &Aggregate) -> Option<(f64, f64)> {
    let num = a.zero_loss_pps?;
    let den = direct_of(run, &a.key)?.zero_loss_pps?;
    ratio(num, den)
}

fn ratio(num: Stat, den: Stat) -> Option<(f64, f64)> {
    (den.mean > 0.0).then(|| {
        (
            num.mean / den.mean,
            num.relative_noise() + den.relative_noise(),
        )
    })
}

#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
}

fn ratio_row(
    point: &str,
    metric: &'static str,
    base: Option<(f64, f64)>,
    cur: Option<(f64, f64)>,
    better: Better,
    tol: &CompareTolerances,
) -> Option<Row> {
    let ((b, b_noise), (c, c_noise)) = match (base, cur) {
        (None, None) => return None,
        (Some(b), Some(c)) => (b, c),
        (b, c) => {
            return Some(Row {
                point: point.to_owned(),
                metric,
                baseline: b.map(|x| x.0),
                current: c.map(|x| x.0),
                allowed: None,
                verdict: Verdict::NotJudged,
                note: "measured on one side only".to_owned(),
            });
        }
    };
    if b <= 0.0 {
        return None;
    }
    // Relative worsening: positive = worse.
    let worse = match better {
        Better::Lower => (c - b) / b,
        Better::Higher => (b - c) / b,
    };
    let noise = b_noise + c_noise;
    let allowed = tol.ratio_tolerance + noise;
    let verdict = if worse <= tol.ratio_tolerance {
        if -worse > allowed {
            Verdict::Improved
        } else {
            Verdict::Ok
        }
    } else if worse <= allowed {
        Verdict::WithinNoise
    } else {
        Verdict::Regression
    };
    Some(Row {
        point: point.to_owned(),
        metric,
        baseline: Some(b),
        current: Some(c),
        allowed: Some(allowed),
        verdict,
        note: format!(
            "{:+.1} % ({}), noise {:.1} %",
            worse * 100.0,
            if worse > 0.0 { "worse" } else { "better" },
            noise * 100.0
        ),
    })
}

#[cfg(test)]
mod tests {
    //! Synthetic baseline/current pairs. TEST FIXTURES ONLY: invented numbers, never shipped.
    use super::*;
    use crate::results::{Environment, PointResult, Status, Usage};
    use crate::scenario::Scenario;
    use std::path::Path;

    /// Test fixture: relay/pool and direct at 10 streams, 3 repeats each.
    /// `delivered[i]`, `cpu[i]` are the relay's per-repeat delivered % and CPU s/Mpkt;
    /// `zl` its zero-loss pps (direct: 300k, loadgen CPU 1.0 s/Mpkt).
    fn run(delivered: [f64; 3], cpu: [f64; 3], zl: [f64; 3], machine_speed: f64) -> Results {
        let s = Scenario::parse(
            "name = \"ci\"\nsystems = [\"relay/pool\", \"direct\"]\nstreams = [10]\nrepeats = 3\n",
            Path::new("ci.toml"),
        )
        .unwrap();
        let mut r = Results::new(&s, Path::new("ci.toml"), Environment::default());
        for p in s.points() {
            let i = p.repeat as usize;
            let relay = p.system == SystemKind::RelayPool;
            let mut pr = PointResult::empty(p, Status::Ok);
            pr.offered = 100_000;
            pr.delivered = if relay {
                (delivered[i] * 1000.0).round() as u64
            } else {
                100_000
            };
            // A slower machine (machine_speed < 1) costs more CPU everywhere.
            if relay {
                pr.usage = Some(Usage {
                    cpu_s: cpu[i] / machine_speed * pr.delivered as f64 / 1e6,
                    ..Usage::default()
                });
            }
            pr.loadgen_cpu_s_per_mpkt = Some(1.0 / machine_speed);
            pr.zero_loss_pps = Some(if relay { zl[i] } else { 300_000.0 } * machine_speed);
            pr.derive();
            r.points.push(pr);
        }
        r.refresh_aggregates();
        r
    }

    fn tol() -> CompareTolerances {
        CompareTolerances {
            delivered_drop_pct: 1.0,
            ratio_tolerance: 0.25,
        }
    }

    fn verdict(c: &Comparison, metric: &str) -> Verdict {
        c.rows
            .iter()
            .find(|r| r.metric == metric && r.point.starts_with("relay/pool"))
            .unwrap_or_else(|| panic!("no {metric} row in {c:#?}"))
            .verdict
    }

    #[test]
    fn identical_runs_pass() {
        let base = run([100.0; 3], [2.0; 3], [150e3; 3], 1.0);
        let c = compare(&base, &base.clone(), &tol());
        assert!(!c.has_regression(), "{}", c.table());
        assert_eq!(verdict(&c, "delivered %"), Verdict::Ok);
        assert_eq!(verdict(&c, "CPU/Mpkt vs loadgen"), Verdict::Ok);
        assert_eq!(verdict(&c, "zero-loss vs direct"), Verdict::Ok);
    }

    #[test]
    fn a_slower_machine_is_not_a_regression() {
        let base = run([100.0; 3], [2.0; 3], [150e3; 3], 1.0);
        let cur = run([100.0; 3], [2.0; 3], [150e3; 3], 0.5);
        let c = compare(&base, &cur, &tol());
        assert!(!c.has_regression(), "{}", c.table());
    }

    #[test]
    fn delivered_drop_beyond_tolerance_is_a_regression() {
        let base = run([100.0; 3], [2.0; 3], [150e3; 3], 1.0);
        let cur = run([95.0, 95.2, 94.9], [2.0; 3], [150e3; 3], 1.0);
        let c = compare(&base, &cur, &tol());
        assert!(c.has_regression(), "{}", c.table());
        assert_eq!(verdict(&c, "delivered %"), Verdict::Regression);
        assert!(c.table().contains("REGRESSION"));
    }

    #[test]
    fn delivered_drop_inside_the_repeats_spread_is_noise() {
        // Baseline repeats spread 96..100 (half range 2): a 1.5-point drop is within noise.
        let base = run([100.0, 96.0, 98.0], [2.0; 3], [150e3; 3], 1.0);
        let cur = run([96.5, 96.5, 96.5], [2.0; 3], [150e3; 3], 1.0);
        let c = compare(&base, &cur, &tol());
        assert_eq!(
            verdict(&c, "delivered %"),
            Verdict::WithinNoise,
            "{}",
            c.table()
        );
        assert!(!c.has_regression());
    }

    #[test]
    fn cpu_ratio_worse_beyond_tolerance_is_a_regression() {
        let base = run([100.0; 3], [2.0; 3], [150e3; 3], 1.0);
        let cur = run([100.0; 3], [3.0, 3.1, 2.9], [150e3; 3], 1.0);
        let c = compare(&base, &cur, &tol());
        assert_eq!(
            verdict(&c, "CPU/Mpkt vs loadgen"),
            Verdict::Regression,
            "{}",
            c.table()
        );
    }

    #[test]
    fn cpu_ratio_worse_but_noisy_is_within_noise() {
        // +30 % mean, but the repeats spread +-25 %: within noise.
        let base = run([100.0; 3], [2.0; 3], [150e3; 3], 1.0);
        let cur = run([100.0; 3], [2.0, 2.6, 3.2], [150e3; 3], 1.0);
        let c = compare(&base, &cur, &tol());
        assert_eq!(
            verdict(&c, "CPU/Mpkt vs loadgen"),
            Verdict::WithinNoise,
            "{}",
            c.table()
        );
        assert!(!c.has_regression());
    }

    #[test]
    fn zero_loss_ratio_drop_is_a_regression_and_a_gain_is_improved() {
        let base = run([100.0; 3], [2.0; 3], [150e3; 3], 1.0);
        let worse = run([100.0; 3], [2.0; 3], [90e3; 3], 1.0);
        let c = compare(&base, &worse, &tol());
        assert_eq!(
            verdict(&c, "zero-loss vs direct"),
            Verdict::Regression,
            "{}",
            c.table()
        );
        let better = run([100.0; 3], [2.0; 3], [250e3; 3], 1.0);
        let c = compare(&base, &better, &tol());
        assert_eq!(
            verdict(&c, "zero-loss vs direct"),
            Verdict::Improved,
            "{}",
            c.table()
        );
        assert!(!c.has_regression());
    }

    #[test]
    fn a_point_that_fails_now_is_a_regression() {
        let base = run([100.0; 3], [2.0; 3], [150e3; 3], 1.0);
        let mut cur = base.clone();
        for p in cur
            .points
            .iter_mut()
            .filter(|p| p.point.system == SystemKind::RelayPool)
        {
            *p = PointResult::empty(
                p.point.clone(),
                Status::Failed {
                    reason: "relay exited".into(),
                },
            );
        }
        cur.refresh_aggregates();
        let c = compare(&base, &cur, &tol());
        assert_eq!(
            verdict(&c, "delivered %"),
            Verdict::Regression,
            "{}",
            c.table()
        );
    }
}
