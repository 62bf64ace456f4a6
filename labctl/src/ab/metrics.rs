//! The metrics `labctl ab` judges, their better direction, noise threshold, and when a point's
//! repeats can resolve them at all.
//!
//! | metric | better | noise threshold | judged when |
//! |---|---|---|---|
//! | delivered % | higher | 1 % | the point was not bound by the load generator or the sink |
//! | zero-loss pps | higher | the larger of `--noise` and the search's resolution | repeats whose search ended on a bound (generator, sink, top of range) are left out |
//! | CPU s/Mpkt (the system's CPUs) | lower | `--noise` (5 %) | at least [`MIN_CPU_PACKETS`] packets per repeat |
//! | proc CPU s/Mpkt (the relay process) | lower | `--noise` | at least [`MIN_PROCESS_CPU_S`] of process CPU per repeat (10 ms ticks) |
//! | iface p50 us (median latency to the sinks' interfaces) | lower | the larger of `--noise` and [`LATENCY_NOISE`] (20 %) | the point was not bound and the sinks took kernel timestamps |
//! | iface p99 us (99th percentile of the same) | lower | the larger of `--noise` and [`TAIL_NOISE`] (50 %), on the median of the per-pair changes | as the median, and at least [`MIN_TAIL_PAIRS`] pairs |
//!
//! Why these thresholds: the rule calls a change only when the whole 95 % interval clears the
//! threshold, so a false alarm needs every pair to lean the same way by more than it. Measured
//! A/A on the 2-core VM (40 streams, 6 pairs, another engineer's build running): delivered %
//! identical, CPU s/Mpkt per-pair ratios spread 0.3 %, process CPU 6 %, median latency 11 % (a
//! few repeats 20 % slower when something else ran), the zero-loss rate identical except one
//! repeat. The zero-loss rate is quantised by the search: two runs of one build land one bracket
//! apart, so its threshold is at least the resolution (one bracket never counts as a change).
//! The median latency is the one to the sinks' interfaces (kernel receive timestamps): the
//! system's own. Measured A/A (40 streams x 1000 pps, 8 pairs): its per-pair change spread
//! 12.6 % against the end-to-end median's 16.6 %, and the sinks' host was about half of the
//! end-to-end figure (interface p50 8.3-10.9 us of 14.5-22.0 us end to end).
//! The p99 latency to the sinks' interfaces is judged with a wide band: a tail percentile moves
//! with whatever else ran in that second. Measured on the 2-core VM, one relay build, 6 repeats
//! at 1 stream x 100k pps: 69-152 us; an A/A of 6 pairs there and at 1000 x 50 pps gave per-pair
//! changes within the band (see `TAIL_NOISE`). Only a change of the tail by more than half is
//! called, such as a build that halves it. The tail is judged on the median of its per-pair
//! changes with the sign test's interval, not on their mean with Student's t: a p99 moves with
//! the odd millisecond stall of something else on the machine (one build's p99 at 40 streams x
//! 1000 pps averaged 46-49 us in one A/A and ran 190-630 us per repeat in the next two, back to
//! back on the 2-core VM), so its per-pair changes are skewed and a t-interval
//! on 4 pairs called an A/A of one binary 80 % slower (+63..+98 %) once in five CI runs. The
//! distribution-free interval needs [`MIN_TAIL_PAIRS`] pairs (the shipped `ab` scenario has 6
//! repeats); with 6 to 8 pairs it calls a change only when every pair clears the band. The
//! end-to-end p99, peak RSS and join delay are in the report, not judged.

#[cfg(doc)]
use super::verdict::MIN_TAIL_PAIRS;
use crate::compare::judge::Better;
use crate::results::PointResult;
use crate::scenario::Scenario;

/// Fewest delivered packets per repeat for a CPU-per-packet figure: under it the system's idle
/// and background work dominates the machine-CPU figure.
pub const MIN_CPU_PACKETS: u64 = 50_000;
/// Least process CPU time per repeat for the process figure: /proc counts 10 ms ticks, so
/// 0.25 s is resolved to 4 %.
pub const MIN_PROCESS_CPU_S: f64 = 0.25;
/// Noise threshold of delivered % (relative; about percentage points near 100 %).
pub const DELIVERED_NOISE: f64 = 0.01;
/// Least noise threshold of the median latency (see above: it moves about 11 % per repeat).
pub const LATENCY_NOISE: f64 = 0.20;
/// Least noise threshold of the p99 latency (see above: one build's p99 spans 2x over repeats).
pub const TAIL_NOISE: f64 = 0.50;
/// Default noise threshold of the other metrics.
pub const DEFAULT_NOISE: f64 = 0.05;

/// A judged metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbMetric {
    DeliveredPct,
    ZeroLossPps,
    CpuPerMpkt,
    ProcessCpuPerMpkt,
    LatencyP50Us,
    LatencyP99Us,
}

impl AbMetric {
    pub const ALL: [AbMetric; 6] = [
        AbMetric::DeliveredPct,
        AbMetric::ZeroLossPps,
        AbMetric::CpuPerMpkt,
        AbMetric::ProcessCpuPerMpkt,
        AbMetric::LatencyP50Us,
        AbMetric::LatencyP99Us,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AbMetric::DeliveredPct => "delivered %",
            AbMetric::ZeroLossPps => "zero-loss pps",
            AbMetric::CpuPerMpkt => "CPU s/Mpkt",
            AbMetric::ProcessCpuPerMpkt => "proc CPU s/Mpkt",
            AbMetric::LatencyP50Us => "iface p50 us",
            AbMetric::LatencyP99Us => "iface p99 us",
        }
    }

    pub fn better(self) -> Better {
        match self {
            AbMetric::DeliveredPct | AbMetric::ZeroLossPps => Better::Higher,
            _ => Better::Lower,
        }
    }

    /// True for a tail percentile: judged on the median of the per-pair changes with a
    /// distribution-free interval ([`super::verdict::judge_tail`]), not on their mean.
    pub fn is_tail(self) -> bool {
        self == AbMetric::LatencyP99Us
    }

    /// True for the metrics of the fixed-rate run (not the zero-loss search): a bound point
    /// has no verdict on them.
    pub fn needs_valid_point(self) -> bool {
        self != AbMetric::ZeroLossPps
    }

    /// Noise threshold (fraction) given `--noise` and the scenario.
    pub fn threshold(self, noise: f64, scenario: &Scenario) -> f64 {
        match self {
            AbMetric::DeliveredPct => DELIVERED_NOISE,
            AbMetric::ZeroLossPps => noise.max(scenario.search_resolution().unwrap_or(0.0)),
            AbMetric::LatencyP50Us => noise.max(LATENCY_NOISE),
            AbMetric::LatencyP99Us => noise.max(TAIL_NOISE),
            _ => noise,
        }
    }

    /// The metric's value in one repeat; `None` when it was not measured or, for the zero-loss
    /// rate, is only a lower bound.
    pub fn value(self, p: &PointResult) -> Option<f64> {
        match self {
            AbMetric::DeliveredPct => p.delivered_pct,
            AbMetric::ZeroLossPps => p.zero_loss.filter(|z| z.bound.is_none()).map(|z| z.pps),
            AbMetric::CpuPerMpkt => p.cpu_s_per_mpkt,
            AbMetric::ProcessCpuPerMpkt => p.process_cpu_s_per_mpkt,
            AbMetric::LatencyP50Us => p.interface_latency_ns.map(|l| l.p50 as f64 / 1000.0),
            AbMetric::LatencyP99Us => p.interface_latency_ns.map(|l| l.p99 as f64 / 1000.0),
        }
    }

    /// Why one repeat cannot resolve the metric, if it cannot.
    pub fn unresolved(self, p: &PointResult) -> Option<String> {
        match self {
            AbMetric::CpuPerMpkt if p.delivered < MIN_CPU_PACKETS => Some(format!(
                "{} packets per repeat: too few for CPU per packet (needs {MIN_CPU_PACKETS})",
                p.delivered
            )),
            AbMetric::ProcessCpuPerMpkt => match p.usage {
                Some(u) if u.cpu_s < MIN_PROCESS_CPU_S => Some(format!(
                    "{:.2} s of process CPU per repeat: too few 10 ms ticks (needs {MIN_PROCESS_CPU_S} s)",
                    u.cpu_s
                )),
                _ => None,
            },
            AbMetric::LatencyP50Us | AbMetric::LatencyP99Us
                if p.interface_latency_ns.is_none() && p.latency_ns.is_some() =>
            {
                Some(
                    "no latency to the sinks' interfaces (results from before the sinks took \
                     kernel timestamps, or the wall clock was stepped)"
                        .to_owned(),
                )
            }
            AbMetric::ZeroLossPps => p.zero_loss.and_then(|z| {
                z.bound
                    .map(|b| format!("the search ended on a bound ({b:?}): only a lower bound"))
            }),
            _ => None,
        }
    }
}
