//! A point over its repeats: mean, spread and 95 % interval of every metric, and how many
//! repeats were valid, bound by the load generator or the sink, failed or skipped.
//!
//! A few bound repeats among many valid ones (at most [`MAX_EXCLUDED_FRACTION`] of the measured
//! repeats, at least two valid ones left) are a transient of the lab, not of the point: they are
//! left out of the numbers, counted in `excluded`, and the point keeps its verdict. More than
//! that and the point is bound: its numbers span every measured repeat and carry no verdict.

use super::{PointResult, Status};
use crate::results::measures::SearchBound;
use crate::scenario::PointKey;
use crate::stats::Stat;
use serde::{Deserialize, Serialize};

/// A point over its repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    #[serde(flatten)]
    pub key: PointKey,
    pub repeats: u32,
    /// Repeats measured at the asked load with a sink that kept up (status `ok`).
    pub ok: u32,
    /// Repeats whose sender fell short of the asked rate.
    #[serde(default)]
    pub generator_bound: u32,
    /// Repeats whose sink's host dropped packets.
    #[serde(default)]
    pub sink_bound: u32,
    /// Repeats skipped (a tool missing), as opposed to failed.
    #[serde(default)]
    pub skipped: u32,
    /// Bound repeats left out of the numbers because enough valid repeats remained.
    #[serde(default)]
    pub excluded: u32,
    /// Repeats whose counts disagreed with the kernel's counters.
    #[serde(default)]
    pub cross_check_flags: u32,
    pub delivered_pct: Option<Stat>,
    /// Aggregate rate the sender achieved.
    pub sent_pps: Option<Stat>,
    /// Aggregate rate the point asked for.
    pub asked_pps: f64,
    /// Packets lost at the sink's host, per cent of offered.
    pub sink_lost_pct: Option<Stat>,
    /// CPU seconds per million delivered packets (the system's share, see `PointResult`).
    pub cpu_s_per_mpkt: Option<Stat>,
    /// CPU seconds of the system's processes only per million delivered packets.
    pub process_cpu_s_per_mpkt: Option<Stat>,
    pub latency_p99_ns: Option<Stat>,
    /// p99 latency to the sinks' interfaces (kernel timestamps; see `PointResult`).
    #[serde(default)]
    pub interface_latency_p99_ns: Option<Stat>,
    pub peak_rss_kib: Option<Stat>,
    pub processes: Option<Stat>,
    pub fds: Option<Stat>,
    pub zero_loss_pps: Option<Stat>,
    /// Set when a repeat's zero-loss figure is only a lower bound.
    pub zero_loss_bound: Option<SearchBound>,
    pub join_delay_ms: Option<Stat>,
    /// Worst join delay of each repeat.
    pub join_delay_max_ms: Option<Stat>,
    /// Lowest first-refused index over the repeats (membership capacity), if any refused.
    pub first_refused: Option<u32>,
    /// errno of that refusal.
    pub refused_errno: Option<i32>,
    /// Reasons of repeats that were not `ok` (deduplicated).
    pub problems: Vec<String>,
}

impl Aggregate {
    /// Repeats with numbers (ok or bound).
    pub fn measured(&self) -> u32 {
        self.ok + self.generator_bound + self.sink_bound
    }

    /// True when the numbers come from valid repeats only: a verdict about the asked load holds.
    pub fn is_valid(&self) -> bool {
        self.ok > 0 && self.generator_bound + self.sink_bound == self.excluded
    }

    /// True when the point has no verdict because its sender fell short of the asked rate.
    pub fn is_generator_bound(&self) -> bool {
        self.generator_bound > 0 && !self.is_valid()
    }

    /// True when the point has no verdict because the sinks' host dropped packets.
    pub fn is_sink_bound(&self) -> bool {
        self.sink_bound > 0 && !self.is_valid()
    }
}

/// Largest share of a point's measured repeats that may be bound and left out.
pub const MAX_EXCLUDED_FRACTION: f64 = 0.25;

/// How many of `bound` repeats (out of `ok + bound` measured) are left out of the numbers:
/// all of them when they are few enough, none otherwise.
pub fn excluded_repeats(ok: u32, bound: u32) -> u32 {
    let few = f64::from(bound) <= MAX_EXCLUDED_FRACTION * f64::from(ok + bound);
    if bound > 0 && ok >= 2 && few {
        bound
    } else {
        0
    }
}

/// Computes the aggregates of `points`, in first-seen order of their keys.
pub fn aggregate(points: &[PointResult]) -> Vec<Aggregate> {
    let mut keys: Vec<PointKey> = Vec::new();
    for p in points {
        let key = p.point.key();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|key| {
            let group: Vec<&PointResult> = points.iter().filter(|p| p.point.key() == key).collect();
            aggregate_group(key, &group)
        })
        .collect()
}

fn aggregate_group(key: PointKey, group: &[&PointResult]) -> Aggregate {
    let count = |f: &dyn Fn(&Status) -> bool| group.iter().filter(|p| f(&p.status)).count() as u32;
    let ok = count(&|s| matches!(s, Status::Ok));
    let generator_bound = count(&|s| matches!(s, Status::GeneratorBound { .. }));
    let sink_bound = count(&|s| matches!(s, Status::SinkBound { .. }));
    let excluded = excluded_repeats(ok, generator_bound + sink_bound);
    let measured: Vec<&PointResult> = group
        .iter()
        .copied()
        .filter(|p| counts_in_numbers(&p.status, excluded > 0))
        .collect();
    let stat = |f: &dyn Fn(&PointResult) -> Option<f64>| {
        Stat::of(&measured.iter().filter_map(|p| f(p)).collect::<Vec<_>>())
    };
    let refused = group
        .iter()
        .filter_map(|p| p.capacity.as_ref())
        .filter_map(|c| Some((c.first_refused?, c.errno)))
        .min_by_key(|(i, _)| *i);
    let mut problems: Vec<String> = Vec::new();
    for reason in group.iter().filter_map(|p| p.status.reason()) {
        if !problems.iter().any(|r| r == reason) {
            problems.push(reason.to_owned());
        }
    }
    Aggregate {
        repeats: group.len() as u32,
        ok,
        generator_bound,
        sink_bound,
        excluded,
        skipped: count(&|s| matches!(s, Status::Skipped { .. })),
        cross_check_flags: measured
            .iter()
            .filter(|p| p.counters.as_ref().is_some_and(|c| c.flagged()))
            .count() as u32,
        delivered_pct: stat(&|p| p.delivered_pct),
        sent_pps: stat(&|p| p.sent_pps),
        asked_pps: key.rate_pps * f64::from(key.streams),
        sink_lost_pct: stat(&|p| {
            (p.offered > 0).then(|| p.sink_lost as f64 * 100.0 / p.offered as f64)
        }),
        cpu_s_per_mpkt: stat(&|p| p.cpu_s_per_mpkt),
        process_cpu_s_per_mpkt: stat(&|p| p.process_cpu_s_per_mpkt),
        latency_p99_ns: stat(&|p| p.latency_ns.map(|l| l.p99 as f64)),
        interface_latency_p99_ns: stat(&|p| p.interface_latency_ns.map(|l| l.p99 as f64)),
        peak_rss_kib: stat(&|p| p.usage.map(|u| u.peak_rss_kib as f64)),
        processes: stat(&|p| p.usage.map(|u| f64::from(u.processes))),
        fds: stat(&|p| p.usage.map(|u| f64::from(u.fds))),
        zero_loss_pps: stat(&|p| p.zero_loss.map(|z| z.pps)),
        zero_loss_bound: measured
            .iter()
            .find_map(|p| p.zero_loss.and_then(|z| z.bound)),
        join_delay_ms: stat(&|p| p.join_delay_ms),
        join_delay_max_ms: stat(&|p| p.join_delay_max_ms),
        first_refused: refused.map(|(i, _)| i),
        refused_errno: refused.and_then(|(_, e)| e),
        problems,
        key,
    }
}

/// Whether a repeat with `status` counts in its point's numbers; `excluding` says the point's
/// bound repeats were left out.
pub fn counts_in_numbers(status: &Status, excluding: bool) -> bool {
    if excluding {
        matches!(status, Status::Ok)
    } else {
        status.is_measured()
    }
}
