//! The scenario's goals (`[[goals]]`) judged on the run's own aggregates: each is met, not met,
//! or has no verdict (a figure that is only a lower bound on the wrong side, a point without a
//! valid repeat, a point not measured, or a ratio or level whose 95 % interval over the repeats
//! still holds the target), always with the figures it was judged on.
//!
//! The interval: of a level, the mean's (Student's t over the repeats); of a ratio, Student's t
//! on the per-repeat ratios, whose mean is then the ratio shown (the systems of one repeat are
//! measured back to back, so what drifts between repeats hits both: `compare --ab`'s
//! statistic). With one repeat, the ratio of the two figures. A goal is met only when its whole interval is on the target's good side and not
//! met only when its whole interval is on the other: a ratio of 0.97 against a goal of 1.0 from
//! repeats that spread by 10 % decides nothing. With one repeat there is no interval and the
//! mean decides (the report says "one repeat").

use super::{escape, format_number};
use crate::results::{Aggregate, PointResult, Results, SearchBound};
use crate::scenario::{Goal, GoalMetric, System};
use crate::stats::{Stat, pair_by_repeat, paired_relative_difference_at};
use std::fmt::Write;

/// How a goal came out.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Met,
    NotMet,
    /// The figures cannot decide (the reason says why).
    NoVerdict(String),
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::NotMet => "not met",
            Verdict::NoVerdict(_) => "no verdict",
        }
    }
}

/// Confidence of a goal's interval.
const CONFIDENCE: f64 = 0.95;

/// A figure of one system at the goal's point: value and whether it is only a lower bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub lower_bound: bool,
    /// (repeat, value) of every repeat the value is the mean of, for its interval.
    pub samples: Vec<(u32, f64)>,
}

/// One judged goal.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub goal: Goal,
    pub system: Option<Figure>,
    pub versus: Option<Figure>,
    /// system / versus, or the system's level without `versus`.
    pub value: Option<f64>,
    /// 95 % interval of `value` over the repeats; `None` with one repeat.
    pub interval: Option<(f64, f64)>,
    pub verdict: Verdict,
}

/// Every goal of the run's scenario, judged.
pub fn judge_all(r: &Results) -> Vec<Judged> {
    r.scenario
        .definition
        .goals
        .iter()
        .map(|g| judge(r, g))
        .collect()
}

fn judge(r: &Results, goal: &Goal) -> Judged {
    let system = figure(r, goal, &goal.system);
    let versus = goal.versus.as_ref().map(|v| figure(r, goal, v));
    let mut judged = Judged {
        goal: goal.clone(),
        system: system.as_ref().ok().cloned(),
        versus: versus.as_ref().and_then(|v| v.as_ref().ok().cloned()),
        value: None,
        interval: None,
        verdict: Verdict::NoVerdict(String::new()),
    };
    let (s, v) = match (system, versus) {
        (Err(why), _) | (_, Some(Err(why))) => {
            judged.verdict = Verdict::NoVerdict(why);
            return judged;
        }
        (Ok(s), None) => (s, None),
        (Ok(s), Some(Ok(v))) => (s, Some(v)),
    };
    let (value, interval) = match &v {
        Some(v) if v.value > 0.0 => match paired_ratio(&s, v) {
            Some((mean, interval)) => (mean, Some(interval)),
            None => (s.value / v.value, None),
        },
        Some(_) => {
            judged.verdict = Verdict::NoVerdict("the comparison figure is 0".into());
            return judged;
        }
        None => (s.value, level_interval(&s)),
    };
    judged.value = Some(value);
    judged.interval = interval;
    judged.verdict = decide(
        goal,
        value,
        interval,
        s.lower_bound,
        v.as_ref().is_some_and(|v| v.lower_bound),
    );
    judged
}

/// 95 % interval of a level: the mean's.
fn level_interval(f: &Figure) -> Option<(f64, f64)> {
    let values: Vec<f64> = f.samples.iter().map(|(_, v)| *v).collect();
    let half = Stat::of(&values)?.ci95?;
    // Every goal metric is a count, a rate, a time or a share: never negative.
    Some(((f.value - half).max(0.0), f.value + half))
}

/// system / versus as the mean of the ratios of the repeats both measured, with its 95 %
/// interval (Student's t on those ratios); `None` for fewer than two such repeats.
fn paired_ratio(system: &Figure, versus: &Figure) -> Option<(f64, (f64, f64))> {
    let pairs = pair_by_repeat(&versus.samples, &system.samples);
    let d = paired_relative_difference_at(&pairs, CONFIDENCE)?;
    // A ratio of non-negative figures is not negative, whatever the t interval says.
    let (lo, hi) = d.interval?;
    Some((1.0 + d.relative, ((1.0 + lo).max(0.0), (1.0 + hi).max(0.0))))
}

/// Met or not, given the interval (the whole of it must be on one side of the target) and which
/// figures are only lower bounds: a lower-bounded system can only be judged up (its true value
/// is higher), a lower-bounded comparison only down.
fn decide(
    goal: &Goal,
    value: f64,
    interval: Option<(f64, f64)>,
    system_bound: bool,
    versus_bound: bool,
) -> Verdict {
    let (target, wants_high) = match (goal.at_least, goal.at_most) {
        (Some(t), _) => (t, true),
        (None, Some(t)) => (t, false),
        (None, None) => return Verdict::NoVerdict("the goal has no bound".into()),
    };
    let (lo, hi) = interval.unwrap_or((value, value));
    // Raising the system's figure or lowering the comparison's moves the ratio up.
    let (may_rise, may_fall) = (system_bound, versus_bound);
    let (surely_passes, surely_fails, pass_at_risk, fail_at_risk) = if wants_high {
        (lo >= target, hi < target, may_fall, may_rise)
    } else {
        (hi <= target, lo > target, may_rise, may_fall)
    };
    if surely_passes && !pass_at_risk {
        Verdict::Met
    } else if surely_fails && !fail_at_risk {
        Verdict::NotMet
    } else if surely_passes || surely_fails {
        Verdict::NoVerdict(format!(
            "{} against {} is reached only as a lower bound (the lab's limit), so the ratio \
             could still cross {}",
            format_number(value),
            format_number(target),
            format_number(target)
        ))
    } else {
        Verdict::NoVerdict(format!(
            "{} is within the repeats' noise of {}: its 95 % interval {}..{} holds it (more \
             repeats narrow it)",
            format_number(value),
            format_number(target),
            format_number(lo),
            format_number(hi)
        ))
    }
}

/// The goal's metric for one system, or why there is none.
fn figure(r: &Results, goal: &Goal, system: &System) -> Result<Figure, String> {
    let a = r
        .aggregates
        .iter()
        .find(|a| {
            &a.key.system == system && a.key.streams == goal.streams && a.key.fanout == goal.fanout
        })
        .ok_or_else(|| {
            format!(
                "{system} was not measured at streams={} fanout={}",
                goal.streams, goal.fanout
            )
        })?;
    match goal.metric {
        GoalMetric::ZeroLossPps | GoalMetric::ZeroLossOutputPps => search_figure(r, a, goal),
        _ if a.ok == 0 => Err(format!(
            "{system} at streams={} fanout={} has no repeat at the asked load (generator- or \
             sink-bound, failed or skipped)",
            goal.streams, goal.fanout
        )),
        metric => level(r, a, metric).ok_or_else(|| format!("{system}: no {}", metric.label())),
    }
}

fn search_figure(r: &Results, a: &Aggregate, goal: &Goal) -> Result<Figure, String> {
    let pps = a
        .zero_loss_pps
        .ok_or_else(|| format!("{}: no zero-loss figure", a.key.system))?;
    let scale = if goal.metric == GoalMetric::ZeroLossOutputPps {
        f64::from(a.key.fanout)
    } else {
        1.0
    };
    Ok(Figure {
        value: pps.mean * scale,
        samples: scaled(r.samples(a, |p| p.zero_loss.map(|z| z.pps)), scale),
        lower_bound: matches!(
            a.zero_loss_bound,
            Some(SearchBound::Generator | SearchBound::Sink | SearchBound::RangeTop)
        ),
    })
}

fn level(r: &Results, a: &Aggregate, metric: GoalMetric) -> Option<Figure> {
    let (stat, of): (Stat, fn(&PointResult) -> Option<f64>) = match metric {
        GoalMetric::LatencyP99 => (a.latency_p99_ns?, |p| p.latency_ns.map(|l| l.p99 as f64)),
        GoalMetric::InterfaceLatencyP99 => (a.interface_latency_p99_ns?, |p| {
            p.interface_latency_ns.map(|l| l.p99 as f64)
        }),
        GoalMetric::CpuPerMpkt => (a.cpu_s_per_mpkt?, |p| p.cpu_s_per_mpkt),
        GoalMetric::DeliveredPct => (a.delivered_pct?, |p| p.delivered_pct),
        GoalMetric::ZeroLossPps | GoalMetric::ZeroLossOutputPps => return None,
    };
    let scale = match metric {
        // ns to us.
        GoalMetric::LatencyP99 | GoalMetric::InterfaceLatencyP99 => 1e-3,
        _ => 1.0,
    };
    Some(Figure {
        value: stat.mean * scale,
        lower_bound: false,
        samples: scaled(r.samples(a, of), scale),
    })
}

/// Every sample times `factor` (other units, or input to output packets).
fn scaled(samples: Vec<(u32, f64)>, factor: f64) -> Vec<(u32, f64)> {
    samples
        .into_iter()
        .map(|(repeat, v)| (repeat, v * factor))
        .collect()
}

/// The value with its interval: "0.84 (95 % CI 0.71..0.97)", or "(one repeat)".
fn value_text(j: &Judged) -> String {
    let Some(value) = j.value else {
        return "-".to_owned();
    };
    match j.interval {
        Some((lo, hi)) => format!(
            "{} (95 % CI {}..{})",
            format_number(value),
            format_number(lo),
            format_number(hi)
        ),
        None => format!("{} (one repeat)", format_number(value)),
    }
}

fn figure_cell(f: Option<&Figure>) -> String {
    f.map_or("-".to_owned(), |f| {
        format!(
            "{}{}",
            if f.lower_bound { "&ge; " } else { "" },
            format_number(f.value)
        )
    })
}

/// One line per goal for the terminal.
pub fn summary_line(j: &Judged) -> String {
    let target = match (j.goal.at_least, j.goal.at_most) {
        (Some(t), _) => format!(">= {}", format_number(t)),
        (_, Some(t)) => format!("<= {}", format_number(t)),
        _ => String::new(),
    };
    let value = value_text(j);
    match &j.verdict {
        Verdict::NoVerdict(why) => format!("{}: no verdict ({why})", j.goal.title),
        v => format!("{}: {}: {value}, goal {target}", j.goal.title, v.label()),
    }
}

/// The report's section (empty when the scenario states no goals).
pub fn section(r: &Results) -> String {
    let judged = judge_all(r);
    if judged.is_empty() {
        return String::new();
    }
    let mut h = String::from(
        "<h2>Goals</h2>\n<table><tr><th>goal</th><th>metric</th><th>system</th><th>versus</th>\
         <th>ratio or level</th><th>target</th><th>verdict</th><th>note</th></tr>\n",
    );
    for j in &judged {
        let target = match (j.goal.at_least, j.goal.at_most) {
            (Some(t), _) => format!("&ge; {}", format_number(t)),
            (_, Some(t)) => format!("&le; {}", format_number(t)),
            _ => String::new(),
        };
        let verdict = match &j.verdict {
            Verdict::NoVerdict(why) if !why.is_empty() => {
                format!("no verdict: {}", escape(why))
            }
            v => v.label().to_owned(),
        };
        let class = if j.verdict == Verdict::NotMet {
            " class=\"bad\""
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{target}</td>\
             <td{class}>{verdict}</td><td>{}</td></tr>",
            escape(&j.goal.title),
            j.goal.metric.label(),
            escape(&j.goal.system.to_string()),
            figure_cell(j.system.as_ref()),
            j.goal.versus.as_ref().map_or("-".to_owned(), |v| format!(
                "{} {}",
                escape(&v.to_string()),
                figure_cell(j.versus.as_ref())
            )),
            value_text(j),
            escape(&j.goal.note),
        );
    }
    h.push_str(
        "</table>\n<p>Ratios are of figures measured in this run, side by side (with repeats, \
                the mean of the per-repeat ratios). \
                &ge; marks a figure that is only a lower bound (the search hit the lab's own \
                limit); a goal whose verdict depends on such a bound has none. A goal is met \
                (or not) only when the 95 % interval of its ratio or level over the repeats \
                lies wholly on one side of the target (Student's t; for a ratio, on the \
                per-repeat ratios); an interval that \
                holds the target is noise, no verdict.</p>\n",
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(at_least: Option<f64>, at_most: Option<f64>) -> Goal {
        let bound = match (at_least, at_most) {
            (Some(t), _) => format!("at_least = {t:?}"),
            (_, Some(t)) => format!("at_most = {t:?}"),
            _ => unreachable!("a test goal has a bound"),
        };
        let text = format!(
            "name = \"g\"\nsystems = [\"relay/pool\", \"kernel\"]\nstreams = [1]\n[[goals]]\n\
             title = \"g\"\nmetric = \"cpu_per_mpkt\"\nsystem = \"relay/pool\"\nversus = \"kernel\"\n\
             streams = 1\n{bound}\n"
        );
        crate::scenario::Scenario::parse(&text, std::path::Path::new("g.toml"))
            .unwrap()
            .goals
            .remove(0)
    }

    #[test]
    fn a_ratio_decides_only_when_its_whole_interval_is_on_one_side() {
        let at_least = goal(Some(1.0), None);
        let noise = decide(&at_least, 0.97, Some((0.85, 1.09)), false, false);
        assert!(
            matches!(&noise, Verdict::NoVerdict(why) if why.contains("noise")),
            "{noise:?}"
        );
        assert_eq!(
            decide(&at_least, 0.96, Some((0.93, 0.99)), false, false),
            Verdict::NotMet
        );
        assert_eq!(
            decide(&at_least, 1.1, Some((1.02, 1.18)), false, false),
            Verdict::Met
        );
        // One repeat: the value decides.
        assert_eq!(decide(&at_least, 0.97, None, false, false), Verdict::NotMet);
        let at_most = goal(None, Some(2.0));
        assert!(matches!(
            decide(&at_most, 1.22, Some((0.3, 4.0)), false, false),
            Verdict::NoVerdict(_)
        ));
        assert_eq!(
            decide(&at_most, 1.22, Some((0.9, 1.6)), false, false),
            Verdict::Met
        );
    }

    #[test]
    fn lower_bounds_keep_their_rules_inside_the_interval_test() {
        let at_least = goal(Some(1.0), None);
        // Clearly above, but the comparison is a lower bound: its true value may be higher.
        assert!(matches!(
            decide(&at_least, 1.5, Some((1.2, 1.8)), false, true),
            Verdict::NoVerdict(why) if why.contains("lower bound")
        ));
        // Clearly above with the system a lower bound: it can only rise, met.
        assert_eq!(
            decide(&at_least, 1.5, Some((1.2, 1.8)), true, false),
            Verdict::Met
        );
        // Clearly below with the system a lower bound: it might still reach the goal.
        assert!(matches!(
            decide(&at_least, 0.5, Some((0.4, 0.6)), true, false),
            Verdict::NoVerdict(_)
        ));
    }

    #[test]
    fn a_ratio_interval_pairs_the_repeats() {
        let figure = |values: &[f64]| Figure {
            value: Stat::of(values).unwrap().mean,
            lower_bound: false,
            samples: (0..).zip(values.iter().copied()).collect(),
        };
        // Both drift together over the repeats; the system is 0.8 x the comparison every time.
        let (system, versus) = (
            figure(&[80.0, 120.0, 160.0]),
            figure(&[100.0, 150.0, 200.0]),
        );
        let (mean, (lo, hi)) = paired_ratio(&system, &versus).unwrap();
        assert!((mean - 0.8).abs() < 1e-9, "{mean}");
        assert!(
            (lo - 0.8).abs() < 1e-9 && (hi - 0.8).abs() < 1e-9,
            "{lo} {hi}"
        );
        // Ratios 0.9, 1.0, 1.1: half-width t(0.975, 2) * 0.1 / sqrt(3) = 0.248.
        let (system, versus) = (
            figure(&[90.0, 100.0, 110.0]),
            figure(&[100.0, 100.0, 100.0]),
        );
        let (_, (lo, hi)) = paired_ratio(&system, &versus).unwrap();
        assert!(
            (lo - 0.752).abs() < 1e-3 && (hi - 1.248).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(paired_ratio(&figure(&[90.0]), &versus), None);
    }
}
