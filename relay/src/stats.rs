//! Counters and opt-in per-stage timing.
//!
//! Counters are relaxed atomics: per rule (rx), per output (tx, errors) and per worker
//! (received, drops by [`DropReason`]). With `--timing`, each worker records per-stage
//! durations into its own hdrhistograms ([`StageTimings`]); `stats` merges them on request.
//! With timing off the data plane pays one predictable branch per stage.

use crate::drop_reason::DropReason;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Default)]
pub struct RuleStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
}

#[derive(Debug, Default)]
pub struct OutputStats {
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_errors: AtomicU64,
}

/// Adds `n` to a counter.
#[inline]
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The stages `--timing` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Stage {
    /// Kernel receive timestamp -> the worker starts on the packet (socket queue + wakeup).
    Receive = 0,
    Parse,
    Lookup,
    /// Building every output frame of one packet (headers + payload copy).
    FanoutCopy,
    /// One io_uring submit call: the kernel sends every output of the round (per round).
    Submit,
    /// Send queued -> its completion reaped.
    Completion,
}

impl Stage {
    pub const COUNT: usize = 6;
    pub const ALL: [Stage; Self::COUNT] = [
        Stage::Receive,
        Stage::Parse,
        Stage::Lookup,
        Stage::FanoutCopy,
        Stage::Submit,
        Stage::Completion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Receive => "receive",
            Stage::Parse => "parse",
            Stage::Lookup => "lookup",
            Stage::FanoutCopy => "fanout_copy",
            Stage::Submit => "submit",
            Stage::Completion => "completion",
        }
    }
}

/// One histogram per stage, in nanoseconds.
#[derive(Debug, Clone)]
pub struct StageTimings {
    stages: Vec<Histogram<u64>>,
}

impl Default for StageTimings {
    fn default() -> Self {
        Self::new()
    }
}

impl StageTimings {
    pub fn new() -> Self {
        let stages = Stage::ALL
            .iter()
            .map(|_| {
                // 1 ns .. 60 s at 3 significant digits: constant, valid bounds.
                Histogram::new_with_bounds(1, 60_000_000_000, 3)
                    .expect("constant histogram bounds are valid")
            })
            .collect();
        StageTimings { stages }
    }

    #[inline]
    pub fn record(&mut self, stage: Stage, nanos: u64) {
        if let Some(h) = self.stages.get_mut(stage as usize) {
            h.saturating_record(nanos.max(1));
        }
    }

    pub fn merge(&mut self, other: &StageTimings) {
        for (mine, theirs) in self.stages.iter_mut().zip(&other.stages) {
            // Same bounds on both sides, so adding cannot fail.
            let _ = mine.add(theirs);
        }
    }

    pub fn summary(&self) -> Vec<StageSummary> {
        Stage::ALL
            .iter()
            .zip(&self.stages)
            .map(|(stage, h)| StageSummary {
                stage: stage.name(),
                samples: h.len(),
                p50: Some(h.value_at_quantile(0.5)),
                p90: Some(h.value_at_quantile(0.9)),
                p99: Some(h.value_at_quantile(0.99)),
                p999: Some(h.value_at_quantile(0.999)),
                max: Some(h.max()),
                mean: h.mean(),
            })
            .collect()
    }
}

/// Percentiles of one stage, nanoseconds. A stage timed as a sum (the tc data plane's) has
/// its mean only: the percentiles are absent, not 0.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StageSummary {
    pub stage: &'static str,
    pub samples: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p999: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    pub mean: f64,
}

impl StageSummary {
    /// A stage known only by `samples` and their `total_ns` (mean 0 without samples).
    pub fn mean_only(stage: &'static str, samples: u64, total_ns: u64) -> StageSummary {
        StageSummary {
            stage,
            samples,
            p50: None,
            p90: None,
            p99: None,
            p999: None,
            max: None,
            mean: if samples == 0 {
                0.0
            } else {
                total_ns as f64 / samples as f64
            },
        }
    }
}

/// Where a worker is in its life (kept by the supervisor, shown by `stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum WorkerState {
    /// Receiving and forwarding.
    Running = 0,
    /// It failed; a restart with fresh sockets is pending (back-off) or under way.
    Restarting = 1,
    /// It failed and could not be kept alive (the relay exits).
    Failed = 2,
}

impl WorkerState {
    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Restarting => "restarting",
            WorkerState::Failed => "failed",
        }
    }

    fn from_u8(value: u8) -> WorkerState {
        match value {
            0 => WorkerState::Running,
            1 => WorkerState::Restarting,
            _ => WorkerState::Failed,
        }
    }
}

/// Counters of one worker (kept across its restarts).
#[derive(Debug)]
pub struct WorkerStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rx_errors: AtomicU64,
    /// Frames the kernel dropped before the worker read them (socket queue full).
    pub socket_drops: AtomicU64,
    pub tx_packets: AtomicU64,
    /// Of `tx_packets`, those sent from a transmit ring (`--send ring`).
    pub tx_ring_packets: AtomicU64,
    pub batches: AtomicU64,
    pub ignored_outgoing: AtomicU64,
    /// With `--dataplane tc`, frames of a rule the tcx program forwards, left alone (the
    /// workers see them while they receive for a rule of their own).
    pub in_kernel: AtomicU64,
    pub drops: [AtomicU64; DropReason::COUNT],
    pub timings: Mutex<StageTimings>,
    /// A [`WorkerState`].
    state: AtomicU8,
    /// Times the supervisor restarted this worker.
    pub restarts: AtomicU64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            rx_errors: AtomicU64::new(0),
            socket_drops: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_ring_packets: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            ignored_outgoing: AtomicU64::new(0),
            in_kernel: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            timings: Mutex::new(StageTimings::new()),
            state: AtomicU8::new(WorkerState::Running as u8),
            restarts: AtomicU64::new(0),
        }
    }
}

impl WorkerStats {
    #[inline]
    pub fn drop_packet(&self, reason: DropReason) {
        bump(&self.drops[reason as usize], 1);
    }

    pub fn timings(&self) -> MutexGuard<'_, StageTimings> {
        self.timings.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> WorkerState {
        WorkerState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn set_state(&self, state: WorkerState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_merge_and_summarise() {
        let mut a = StageTimings::new();
        let mut b = StageTimings::new();
        for n in 1..=100 {
            a.record(Stage::Parse, n);
            b.record(Stage::Parse, n + 100);
        }
        a.merge(&b);
        let summary = a.summary();
        let parse = summary.iter().find(|s| s.stage == "parse").unwrap();
        assert_eq!(parse.samples, 200);
        assert!(
            parse.p50.is_some_and(|p50| (99..=101).contains(&p50)),
            "p50 {:?}",
            parse.p50
        );
        assert_eq!(parse.max, Some(200));
        let lookup = summary.iter().find(|s| s.stage == "lookup").unwrap();
        assert_eq!(lookup.samples, 0);
    }

    #[test]
    fn worker_drops_are_counted_by_reason() {
        let w = WorkerStats::default();
        w.drop_packet(DropReason::NoRule);
        w.drop_packet(DropReason::NoRule);
        w.drop_packet(DropReason::Fragment);
        assert_eq!(read(&w.drops[DropReason::NoRule as usize]), 2);
        assert_eq!(read(&w.drops[DropReason::Fragment as usize]), 1);
        assert_eq!(read(&w.drops[DropReason::QueueFull as usize]), 0);
    }

    #[test]
    fn worker_state_round_trips_and_has_names() {
        let w = WorkerStats::default();
        assert_eq!(w.state(), WorkerState::Running);
        for state in [
            WorkerState::Restarting,
            WorkerState::Failed,
            WorkerState::Running,
        ] {
            w.set_state(state);
            assert_eq!(w.state(), state);
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.name()));
        }
    }
}
