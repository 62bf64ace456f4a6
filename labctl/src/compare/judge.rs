//! Judging one metric of one point: baseline repeats against current repeats.
//!
//! - delivered %: a drop of more than `delivered_drop_pct` percentage points is a regression
//!   unless the repeats show it is noise (95 % interval of the difference includes 0);
//! - zero-loss rate (higher is better) and CPU per packet (lower is better): the relative change
//!   of the means with its interval (Welch, or Student's t on the per-pair ratios when paired)
//!   at the confidence of [`Rules`]. A worsening is a regression when it is at least
//!   `min_effect_pct` and significant (the interval excludes 0); with a single repeat on either
//!   side, when it is at least `regression_pct`. The comparison sets the confidence so that its
//!   checks together keep the family's (see [`super::Comparison`]).
//!
//! A metric the baseline has and the current run lacks is `Missing`; a current point that was
//! bound by the load generator or the sink is `Unmeasurable`: both fail the gate.

use crate::scenario::CompareTolerances;
use crate::stats::{
    Difference, Stat, pair_by_repeat, paired_relative_difference_at, relative_difference_at,
};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No worsening beyond the thresholds.
    Ok,
    /// Better beyond the thresholds.
    Improved,
    /// Worse: fails the gate.
    Regression,
    /// The baseline measured it and the current run did not: fails the gate.
    Missing,
    /// The current point was generator- or sink-bound: no verdict possible, fails the gate.
    Unmeasurable,
    /// Shown for information (e.g. the baseline itself was bound).
    NotJudged,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Improved => "improved",
            Verdict::Regression => "REGRESSION",
            Verdict::Missing => "MISSING",
            Verdict::Unmeasurable => "UNMEASURABLE",
            Verdict::NotJudged => "not judged",
        }
    }

    /// True for the verdicts that fail the gate.
    pub fn fails(self) -> bool {
        matches!(
            self,
            Verdict::Regression | Verdict::Missing | Verdict::Unmeasurable
        )
    }
}

/// Which direction is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// The judged metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    DeliveredPct,
    ZeroLossPps,
    /// The system's share of the machine's CPU per delivered packet.
    CpuPerMpkt,
    /// The system's processes' CPU per delivered packet (exact, no kernel softirq).
    ProcessCpuPerMpkt,
}

impl Metric {
    pub const ALL: [Metric; 4] = [
        Metric::DeliveredPct,
        Metric::ZeroLossPps,
        Metric::CpuPerMpkt,
        Metric::ProcessCpuPerMpkt,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Metric::DeliveredPct => "delivered %",
            Metric::ZeroLossPps => "zero-loss pps",
            Metric::CpuPerMpkt => "CPU s/Mpkt",
            Metric::ProcessCpuPerMpkt => "proc CPU s/Mpkt",
        }
    }

    pub fn better(self) -> Better {
        match self {
            Metric::DeliveredPct | Metric::ZeroLossPps => Better::Higher,
            Metric::CpuPerMpkt | Metric::ProcessCpuPerMpkt => Better::Lower,
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
    /// Worsening: percentage points for delivered %, a fraction otherwise (0.1 = 10 % worse).
    pub worse: Option<f64>,
    /// 95 % interval of `worse`.
    pub interval: Option<(f64, f64)>,
    pub verdict: Verdict,
    pub note: String,
}

/// One side of a check: the per-repeat values and whether the point was valid there.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// (repeat index, value) of every measured repeat.
    pub samples: &'a [(u32, f64)],
    /// False when the point was generator- or sink-bound.
    pub valid: bool,
    /// Set when the value is only a lower bound (a zero-loss search the generator capped).
    pub lower_bound: bool,
}

/// How one check is judged.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub tol: &'a CompareTolerances,
    /// Two systems of one run, repeats interleaved: repeats of the same index are compared pair
    /// by pair, which removes drift that hits both; otherwise the samples are taken as
    /// independent (Welch).
    pub paired: bool,
    /// Confidence of the relative checks' intervals (0.95 for 95 %); delivered % always uses
    /// 95 % (its interval only excuses noise).
    pub confidence: f64,
}

/// Confidence of the delivered % interval.
const DELIVERED_CONFIDENCE: f64 = 0.95;

/// Judges one metric; `None` when neither side measured it.
pub fn judge(
    point: &str,
    metric: Metric,
    base: Side<'_>,
    cur: Side<'_>,
    rules: Rules<'_>,
) -> Option<Row> {
    let values = |s: &[(u32, f64)]| s.iter().map(|(_, v)| *v).collect::<Vec<f64>>();
    let (base_values, cur_values) = (values(base.samples), values(cur.samples));
    let mean = |s: &[f64]| Stat::of(s).map(|s| s.mean);
    let mut row = Row {
        point: point.to_owned(),
        metric: metric.label(),
        baseline: mean(&base_values),
        current: mean(&cur_values),
        worse: None,
        interval: None,
        verdict: Verdict::NotJudged,
        note: String::new(),
    };
    match (base.samples.is_empty(), cur.samples.is_empty()) {
        (true, true) => return None,
        (false, true) => {
            row.verdict = Verdict::Missing;
            row.note = "measured in the baseline, not in the current run".to_owned();
            return Some(row);
        }
        (true, false) => {
            row.note = "not measured in the baseline".to_owned();
            return Some(row);
        }
        (false, false) => {}
    }
    if !cur.valid {
        row.verdict = Verdict::Unmeasurable;
        row.note = "the current point was bound by the load generator or the sink".to_owned();
        return Some(row);
    }
    if !base.valid {
        row.note = "the baseline point was bound by the load generator or the sink".to_owned();
        return Some(row);
    }
    let confidence = match metric {
        Metric::DeliveredPct => DELIVERED_CONFIDENCE,
        _ => rules.confidence,
    };
    let difference = if rules.paired {
        paired_relative_difference_at(&pair_by_repeat(base.samples, cur.samples), confidence)
    } else {
        relative_difference_at(&base_values, &cur_values, confidence)
    };
    match metric {
        Metric::DeliveredPct => {
            judge_points(&mut row, &base_values, &cur_values, difference, rules.tol)
        }
        _ => judge_relative(&mut row, metric.better(), base, cur, difference, rules),
    }
    Some(row)
}

/// Delivered %: absolute drop in percentage points.
fn judge_points(
    row: &mut Row,
    base: &[f64],
    cur: &[f64],
    d: Option<Difference>,
    tol: &CompareTolerances,
) {
    let (Some(b), Some(c)) = (Stat::of(base), Stat::of(cur)) else {
        return;
    };
    let drop = b.mean - c.mean;
    row.worse = Some(drop);
    let noise_only = d.is_some_and(|d| d.interval.is_some() && !d.is_significant());
    row.interval = d
        .and_then(|d| d.interval)
        .map(|(lo, hi)| (-hi * b.mean, -lo * b.mean));
    row.verdict = if drop > tol.delivered_drop_pct && !noise_only {
        Verdict::Regression
    } else if -drop > tol.delivered_drop_pct && !noise_only {
        Verdict::Improved
    } else {
        Verdict::Ok
    };
    row.note = format!(
        "{drop:+.3} points (tolerance {} points)",
        tol.delivered_drop_pct
    );
}

/// Zero-loss rate and CPU per packet: relative change with its interval.
fn judge_relative(
    row: &mut Row,
    better: Better,
    base: Side<'_>,
    cur: Side<'_>,
    d: Option<Difference>,
    rules: Rules<'_>,
) {
    let tol = rules.tol;
    let Some(d) = d else {
        row.note = "the baseline is 0".to_owned();
        return;
    };
    let sign = match better {
        Better::Lower => 1.0,
        Better::Higher => -1.0,
    };
    let worse = sign * d.relative;
    let interval = d.interval.map(|(lo, hi)| {
        let (a, b) = (sign * lo, sign * hi);
        (a.min(b), a.max(b))
    });
    row.worse = Some(worse);
    row.interval = interval;
    let min_effect = tol.min_effect_pct / 100.0;
    let single = tol.regression_pct / 100.0;
    // Significant: the interval lies wholly on one side of 0.
    let (is_worse, is_better) = match interval {
        Some((lo, hi)) => (
            worse >= min_effect && lo > 0.0,
            -worse >= min_effect && hi < 0.0,
        ),
        None => (worse >= single, -worse >= single),
    };
    // A zero-loss figure capped by the generator is only a lower bound: a current bound below
    // the baseline may be the generator, not the system (no verdict, the gate fails); a
    // baseline bound cannot show an improvement.
    let bounded = base.lower_bound || cur.lower_bound;
    row.verdict = if base.lower_bound && cur.lower_bound {
        Verdict::NotJudged
    } else if is_worse && cur.lower_bound {
        Verdict::Unmeasurable
    } else if is_worse {
        Verdict::Regression
    } else if is_better && !base.lower_bound {
        Verdict::Improved
    } else {
        Verdict::Ok
    };
    row.note = relative_note(worse, interval, bounded, rules);
}

/// "+4.4 % worse, 97.5 % CI -1.9..+10.7 % (paired repeats)", and whether a side is a bound.
fn relative_note(
    worse: f64,
    interval: Option<(f64, f64)>,
    bounded: bool,
    rules: Rules<'_>,
) -> String {
    let interval = match interval {
        Some((lo, hi)) => format!(
            ", {} % CI {:+.1}..{:+.1} % ({})",
            percent(rules.confidence),
            lo * 100.0,
            hi * 100.0,
            if rules.paired {
                "paired repeats"
            } else {
                "Welch"
            }
        ),
        None => " (one repeat: no interval)".to_owned(),
    };
    format!(
        "{:+.1} % {}{interval}{}",
        worse * 100.0,
        if worse > 0.0 { "worse" } else { "better" },
        if bounded {
            ", a side is only a lower bound (generator-limited search)"
        } else {
            ""
        }
    )
}

/// A confidence as a percentage without needless digits: 0.95 -> "95", 0.9875 -> "98.75".
pub fn percent(confidence: f64) -> String {
    let text = format!("{:.3}", confidence * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}
