//! Goals (`[[goals]]`): ratios or levels a scenario states in advance, judged by the report on
//! the run's own numbers (for example "at fan-out 10, relay/pool's zero-loss output rate >= 1.0 x
//! kernel's"). A goal names one point (system, streams, fan-out) and a metric; with `versus` it
//! is a ratio of two systems measured in the same run, without it a level.

use super::{Scenario, System};
use serde::{Deserialize, Serialize};

/// What a goal compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalMetric {
    /// Zero-loss input rate of the search (packets per second over all streams).
    ZeroLossPps,
    /// Zero-loss output rate: the input rate x fan-out.
    ZeroLossOutputPps,
    /// p99 latency of the fixed-rate traffic (send -> sink process).
    LatencyP99,
    /// p99 latency of the fixed-rate traffic to the sinks' interfaces (kernel timestamps):
    /// the system's own, without the sinks' host.
    InterfaceLatencyP99,
    /// CPU seconds per million delivered packets.
    CpuPerMpkt,
    /// Delivered % of the asked load.
    DeliveredPct,
}

impl GoalMetric {
    /// Short name for tables and messages.
    pub fn label(self) -> &'static str {
        match self {
            GoalMetric::ZeroLossPps => "zero-loss input pps",
            GoalMetric::ZeroLossOutputPps => "zero-loss output pps",
            GoalMetric::LatencyP99 => "p99 latency (us)",
            GoalMetric::InterfaceLatencyP99 => "p99 latency at the sinks' interfaces (us)",
            GoalMetric::CpuPerMpkt => "CPU s / Mpkt",
            GoalMetric::DeliveredPct => "delivered %",
        }
    }
}

/// One goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    /// What the goal says, in words (shown in the report).
    pub title: String,
    pub metric: GoalMetric,
    /// The system judged.
    pub system: System,
    /// The system it is compared with (a ratio); none: `at_least` / `at_most` are levels.
    #[serde(default)]
    pub versus: Option<System>,
    pub streams: u32,
    #[serde(default = "one")]
    pub fanout: u32,
    /// Met when the ratio (or level) is at least this.
    #[serde(default)]
    pub at_least: Option<f64>,
    /// Met when the ratio (or level) is at most this.
    #[serde(default)]
    pub at_most: Option<f64>,
    /// What is known about the goal: what was tried, where the time goes (shown with it).
    #[serde(default)]
    pub note: String,
}

fn one() -> u32 {
    1
}

impl Scenario {
    /// Every goal names systems of the scenario and a point it measures, with one bound.
    pub(super) fn validate_goals(&self) -> Result<(), String> {
        for goal in &self.goals {
            let err = |what: String| Err(format!("field `goals`: goal {:?}: {what}", goal.title));
            for system in std::iter::once(&goal.system).chain(goal.versus.as_ref()) {
                if !self.systems.contains(system) {
                    return err(format!("{system} is not among the scenario's systems"));
                }
            }
            let measured = self
                .views()
                .iter()
                .any(|v| v.streams.contains(&goal.streams) && v.fanout.contains(&goal.fanout));
            if !measured {
                return err(format!(
                    "the scenario measures no point with streams={} fanout={}",
                    goal.streams, goal.fanout
                ));
            }
            match (goal.at_least, goal.at_most) {
                (Some(v), None) | (None, Some(v)) if v.is_finite() && v >= 0.0 => {}
                _ => return err("give exactly one of at_least / at_most, a number >= 0".into()),
            }
        }
        Ok(())
    }
}
