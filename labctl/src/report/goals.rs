//! The scenario's goals (`[[goals]]`) judged on the run's own aggregates: each is met, not met,
//! or has no verdict (a figure that is only a lower bound on the wrong side, a point without a
//! valid repeat, or a point not measured), always with the figures it was judged on.

use super::{escape, format_number};
use crate::results::{Aggregate, Results, SearchBound};
use crate::scenario::{Goal, GoalMetric, System};
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

/// A figure of one system at the goal's point: value and whether it is only a lower bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub lower_bound: bool,
}

/// One judged goal.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub goal: Goal,
    pub system: Option<Figure>,
    pub versus: Option<Figure>,
    /// system / versus, or the system's level without `versus`.
    pub value: Option<f64>,
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
        system: system.as_ref().ok().copied(),
        versus: versus.as_ref().and_then(|v| v.as_ref().ok().copied()),
        value: None,
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
    let value = match v {
        Some(v) if v.value > 0.0 => s.value / v.value,
        Some(_) => {
            judged.verdict = Verdict::NoVerdict("the comparison figure is 0".into());
            return judged;
        }
        None => s.value,
    };
    judged.value = Some(value);
    judged.verdict = decide(goal, value, s.lower_bound, v.is_some_and(|v| v.lower_bound));
    judged
}

/// Met or not, given which figures are only lower bounds: a lower-bounded system can only be
/// judged up (its true value is higher), a lower-bounded comparison only down.
fn decide(goal: &Goal, value: f64, system_bound: bool, versus_bound: bool) -> Verdict {
    let (passes, target) = match (goal.at_least, goal.at_most) {
        (Some(t), _) => (value >= t, t),
        (None, Some(t)) => (value <= t, t),
        (None, None) => return Verdict::NoVerdict("the goal has no bound".into()),
    };
    let wants_high = goal.at_least.is_some();
    // Raising the system's figure or lowering the comparison's moves the ratio up.
    let may_rise = system_bound;
    let may_fall = versus_bound;
    let certain = if passes == wants_high {
        !(if wants_high { may_fall } else { may_rise })
    } else {
        !(if wants_high { may_rise } else { may_fall })
    };
    if certain {
        if passes {
            Verdict::Met
        } else {
            Verdict::NotMet
        }
    } else {
        Verdict::NoVerdict(format!(
            "{} against {} is reached only as a lower bound (the lab's limit), so the ratio \
             could still cross {}",
            format_number(value),
            format_number(target),
            format_number(target)
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
        GoalMetric::ZeroLossPps | GoalMetric::ZeroLossOutputPps => search_figure(a, goal),
        _ if a.ok == 0 => Err(format!(
            "{system} at streams={} fanout={} has no repeat at the asked load (generator- or \
             sink-bound, failed or skipped)",
            goal.streams, goal.fanout
        )),
        metric => level(a, metric).ok_or_else(|| format!("{system}: no {}", metric.label())),
    }
}

fn search_figure(a: &Aggregate, goal: &Goal) -> Result<Figure, String> {
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
        lower_bound: matches!(
            a.zero_loss_bound,
            Some(SearchBound::Generator | SearchBound::Sink | SearchBound::RangeTop)
        ),
    })
}

fn level(a: &Aggregate, metric: GoalMetric) -> Option<Figure> {
    let value = match metric {
        GoalMetric::LatencyP99 => a.latency_p99_ns?.mean / 1000.0,
        GoalMetric::InterfaceLatencyP99 => a.interface_latency_p99_ns?.mean / 1000.0,
        GoalMetric::CpuPerMpkt => a.cpu_s_per_mpkt?.mean,
        GoalMetric::DeliveredPct => a.delivered_pct?.mean,
        GoalMetric::ZeroLossPps | GoalMetric::ZeroLossOutputPps => return None,
    };
    Some(Figure {
        value,
        lower_bound: false,
    })
}

fn figure_cell(f: Option<Figure>) -> String {
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
    let value = j.value.map_or("-".to_owned(), format_number);
    match &j.verdict {
        Verdict::NoVerdict(why) => format!("{}: no verdict ({why})", j.goal.title),
        v => format!("{}: {} ({value}, goal {target})", j.goal.title, v.label()),
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
            figure_cell(j.system),
            j.goal.versus.as_ref().map_or("-".to_owned(), |v| format!(
                "{} {}",
                escape(&v.to_string()),
                figure_cell(j.versus)
            )),
            j.value.map_or("-".to_owned(), format_number),
            escape(&j.goal.note),
        );
    }
    h.push_str(
        "</table>\n<p>Ratios are of figures measured in this run, side by side. \
                &ge; marks a figure that is only a lower bound (the search hit the lab's own \
                limit); a goal whose verdict depends on such a bound has none.</p>\n",
    );
    h
}
