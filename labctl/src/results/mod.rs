//! `results.json`: what a sweep measured, versioned (`"schema": "mcast-lab.results/2"`).
//!
//! One [`PointResult`] per measured point (repeats included), the [`Aggregate`]s over repeats,
//! the scenario as parsed, the CPU placement the run used ([`IsolationRecord`]) and the
//! [`Environment`] the numbers were taken on. `labctl report` and `labctl compare` read this
//! file; loading a file of another schema version is a clear error.

mod aggregate;
pub mod measures;
mod time;

pub use aggregate::{Aggregate, aggregate};
pub use measures::{
    Capacity, CpuBasis, CpuTimes, CrossCheck, Latency, LinkResult, LossyBecause, LossyProbe,
    MachineCpu, SearchBound, UdpCounters, Usage, ZeroLoss,
};
pub use time::{compact_stamp, now_rfc3339, rfc3339};

pub use crate::stats::Stat;

use crate::scenario::{IsolationMode, Point, Scenario, System};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

/// Schema tag of this version of the file.
pub const SCHEMA: &str = "mcast-lab.results/2";
/// How many rules (the last ones installed) have their join delay timed per point: measured by
/// `sweep::join_delay`, quoted by the report.
pub const JOIN_DELAY_SAMPLE: u32 = 5;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub schema: String,
    pub scenario: ScenarioRecord,
    /// UTC, RFC 3339.
    pub started: String,
    /// UTC, RFC 3339; `None` while the sweep runs.
    pub finished: Option<String>,
    /// True when the sweep was stopped (Ctrl-C) before its last point.
    #[serde(default)]
    pub interrupted: bool,
    pub environment: Environment,
    /// Where the load generator and the system under test ran, and the measured ceiling.
    #[serde(default)]
    pub isolation: IsolationRecord,
    pub points: Vec<PointResult>,
    /// Mean, spread and 95 % interval per point over its repeats (recomputed by
    /// [`Results::refresh_aggregates`]).
    #[serde(default)]
    pub aggregates: Vec<Aggregate>,
}

/// The scenario a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    pub name: String,
    /// File it was read from.
    pub path: String,
    pub definition: Scenario,
}

/// The machine and software the numbers were taken on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub kernel_release: String,
    pub cpu_model: String,
    pub cores: u32,
    /// Relevant sysctls as a fresh lab namespace sees them (per-namespace ones).
    #[serde(default)]
    pub namespace_sysctls: BTreeMap<String, String>,
    /// Global / root-namespace sysctls, read only (`net.core.rmem_max` etc.).
    #[serde(default)]
    pub root_sysctls: BTreeMap<String, String>,
    /// Tool -> version line (`socat`, `smcrouted`, `labctl`, `git_commit`); `unknown` if unreadable.
    #[serde(default)]
    pub tools: BTreeMap<String, String>,
}

/// The CPU placement of a run: which role ran where, at which scheduling class, how receive
/// work was steered, and the load generator's measured ceiling under that placement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IsolationRecord {
    /// What the scenario asked for.
    pub requested: IsolationMode,
    /// True when the placement below was applied.
    pub applied: bool,
    /// Role (`sender`, `sink`, `system`, `labctl`) -> CPUs and scheduling class.
    pub roles: BTreeMap<String, RolePlacement>,
    /// How receive processing was steered (RPS), one sentence per rule.
    pub steering: Vec<String>,
    /// Why isolation was not (fully) applied, if it was not.
    pub problems: Vec<String>,
    /// The load generator's ceiling under this placement, per payload size.
    pub ceilings: Vec<Ceiling>,
}

/// Where one role ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolePlacement {
    /// CPUs it may run on (empty = every CPU).
    pub cpus: Vec<u32>,
    /// e.g. `SCHED_FIFO 20` or `SCHED_OTHER`.
    pub scheduling: String,
}

/// The highest aggregate rate the sender and the sink sustain alone (no relay, `direct`),
/// under the run's placement: above it a point measures the lab, not the system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    pub size: u32,
    /// Streams the calibration sent.
    pub streams: u32,
    /// Highest rate the sender reached with the sink counting >= 99.9 % of it; `None` when the
    /// calibration failed.
    pub pps: Option<f64>,
    /// What limited it, or why it is missing.
    pub note: String,
}

/// Outcome of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Status {
    /// Measured at the asked load, with a sink that kept up.
    Ok,
    /// Measured, but the sender reached less than the scenario's `generator_min_fraction` of the
    /// asked rate: no verdict about the asked load.
    GeneratorBound {
        reason: String,
    },
    /// Measured, but the sink's host dropped packets before counting them: loss and latency
    /// figures are the lab's limit, not the system's.
    SinkBound {
        reason: String,
    },
    Failed {
        reason: String,
    },
    Skipped {
        reason: String,
    },
}

impl Status {
    /// True for a valid measurement of the asked load.
    pub fn is_ok(&self) -> bool {
        matches!(self, Status::Ok)
    }

    /// True when the point has numbers (valid or bound).
    pub fn is_measured(&self) -> bool {
        matches!(
            self,
            Status::Ok | Status::GeneratorBound { .. } | Status::SinkBound { .. }
        )
    }

    /// Short label for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::GeneratorBound { .. } => "generator-bound",
            Status::SinkBound { .. } => "sink-bound",
            Status::Failed { .. } => "failed",
            Status::Skipped { .. } => "skipped",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Status::Ok => None,
            Status::GeneratorBound { reason }
            | Status::SinkBound { reason }
            | Status::Failed { reason }
            | Status::Skipped { reason } => Some(reason),
        }
    }
}

/// One measured point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointResult {
    #[serde(flatten)]
    pub point: Point,
    pub status: Status,
    /// Packets the sinks should have received: packets sent x outputs per input.
    pub offered: u64,
    /// Distinct packets the sinks counted.
    pub delivered: u64,
    /// Packets that reached a sink's interface and were dropped by the sink's host (backlog or
    /// socket buffer): the lab's loss, not charged to the system.
    #[serde(default)]
    pub sink_lost: u64,
    /// (delivered + sink_lost) / offered x 100: what the system delivered; `None` when nothing
    /// was offered.
    pub delivered_pct: Option<f64>,
    /// offered - delivered - sink_lost: what the system lost.
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Aggregate send rate asked for.
    #[serde(default)]
    pub asked_pps: f64,
    /// Aggregate send rate achieved by the sender.
    pub sent_pps: Option<f64>,
    /// Send -> the sink process reading the datagram (the worst sink's percentiles).
    pub latency_ns: Option<Latency>,
    /// Send -> the frame entering the sink's interface (kernel receive timestamps): the
    /// system's latency without the sinks' host queueing, processing and waking the sink
    /// (which shares the load generator's CPU). `None` when the sinks had no timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_latency_ns: Option<Latency>,
    /// Per egress link, each counted by its own sink.
    #[serde(default)]
    pub links: Vec<LinkResult>,
    /// The counts checked against the kernel's counters.
    #[serde(default)]
    pub counters: Option<CrossCheck>,
    pub capacity: Option<Capacity>,
    /// Rule added -> first packet of that group at the sink, milliseconds (median over the timed
    /// groups: the last [`JOIN_DELAY_SAMPLE`] rules installed, see `sweep::join_delay`).
    pub join_delay_ms: Option<f64>,
    /// The largest join delay of the timed groups, milliseconds.
    #[serde(default)]
    pub join_delay_max_ms: Option<f64>,
    pub usage: Option<Usage>,
    /// The whole machine's CPU in the measurement window.
    #[serde(default)]
    pub cpu: Option<MachineCpu>,
    /// CPU seconds per million delivered packets, on the basis of `cpu_basis`.
    pub cpu_s_per_mpkt: Option<f64>,
    #[serde(default)]
    pub cpu_basis: Option<CpuBasis>,
    /// CPU seconds of the system's processes per million delivered packets (precise; leaves
    /// out kernel work in softirq).
    #[serde(default)]
    pub process_cpu_s_per_mpkt: Option<f64>,
    /// The zero-loss search, when the scenario asks for one.
    #[serde(default)]
    pub zero_loss: Option<ZeroLoss>,
    /// This project's relay's per-stage timing (`timing = true`), read after the fixed-rate
    /// traffic; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage_timing: Vec<StageTime>,
    /// Free-form notes (e.g. "kernel forwards the input group; outputs not renamed").
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One stage of the relay's per-frame work as `relay run --timing` measured it (its `stats`
/// answer): how often it was timed and how long it took, nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTime {
    /// `receive`, `parse`, `lookup`, `fanout_copy`, `submit` or `completion` (the worker
    /// data plane); `tc_lookup` or `tc_fanout` (`--dataplane tc`).
    pub stage: String,
    pub samples: u64,
    pub mean: f64,
    /// Absent for a stage timed as a sum (the tc data plane's: mean only).
    #[serde(default)]
    pub p50: Option<u64>,
    #[serde(default)]
    pub p99: Option<u64>,
}

impl PointResult {
    /// A result with no measurement yet (counters zero).
    pub fn empty(point: Point, status: Status) -> PointResult {
        PointResult {
            asked_pps: point.total_pps(),
            point,
            status,
            offered: 0,
            delivered: 0,
            sink_lost: 0,
            delivered_pct: None,
            lost: 0,
            duplicates: 0,
            reordered: 0,
            sent_pps: None,
            latency_ns: None,
            interface_latency_ns: None,
            links: Vec::new(),
            counters: None,
            capacity: None,
            join_delay_ms: None,
            join_delay_max_ms: None,
            usage: None,
            cpu: None,
            cpu_s_per_mpkt: None,
            cpu_basis: None,
            process_cpu_s_per_mpkt: None,
            zero_loss: None,
            stage_timing: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Fills `lost`, `delivered_pct` and the CPU figures from the counters. The CPU figure is
    /// the busy time of the system's CPUs when isolation placed it on CPUs of its own, else its
    /// processes' CPU time; `direct` has no system and no CPU figure.
    pub fn derive(&mut self) {
        let reached = (self.delivered + self.sink_lost).min(self.offered);
        self.lost = self.offered - reached;
        self.delivered_pct =
            (self.offered > 0).then(|| reached as f64 * 100.0 / self.offered as f64);
        let per_mpkt =
            |cpu_s: f64| (self.delivered > 0).then(|| cpu_s * 1e6 / self.delivered as f64);
        self.process_cpu_s_per_mpkt = self.usage.and_then(|u| per_mpkt(u.cpu_s));
        let has_system = self.point.system.kind != crate::scenario::SystemKind::Direct;
        let sut_busy = self.cpu.as_ref().and_then(MachineCpu::sut_busy);
        (self.cpu_s_per_mpkt, self.cpu_basis) = match (has_system, sut_busy, self.usage) {
            (false, _, _) => (None, None),
            (true, Some(busy), _) => (per_mpkt(busy), Some(CpuBasis::SutCpus)),
            (true, None, Some(u)) => (per_mpkt(u.cpu_s), Some(CpuBasis::Processes)),
            (true, None, None) => (None, None),
        };
    }

    /// True when the capacity probe saw a refusal with ENOBUFS.
    pub fn hit_enobufs(&self) -> bool {
        self.capacity
            .as_ref()
            .is_some_and(|c| c.errno == Some(libc::ENOBUFS))
    }
}

/// Why a results file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a results file (invalid JSON: {source})")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error(
        "{path} has schema {found:?}, this labctl reads {SCHEMA:?}; re-run the sweep or use the labctl that wrote it"
    )]
    Schema { path: String, found: String },
    #[error("{path}: does not match schema {SCHEMA}: {source}")]
    Shape {
        path: String,
        source: serde_json::Error,
    },
}

impl Results {
    /// A new, empty results document for a scenario read from `path`.
    pub fn new(scenario: &Scenario, path: &Path, environment: Environment) -> Results {
        Results {
            schema: SCHEMA.to_owned(),
            scenario: ScenarioRecord {
                name: scenario.name.clone(),
                path: path.display().to_string(),
                definition: scenario.clone(),
            },
            started: rfc3339(SystemTime::now()),
            finished: None,
            interrupted: false,
            environment,
            isolation: IsolationRecord::default(),
            points: Vec::new(),
            aggregates: Vec::new(),
        }
    }

    /// Recomputes [`Results::aggregates`] from the points.
    pub fn refresh_aggregates(&mut self) {
        self.aggregates = aggregate(&self.points);
    }

    /// Reads a results file, refusing other schema versions with a clear message.
    pub fn load(path: &Path) -> Result<Results, ResultsError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ResultsError::Read {
            path: name.clone(),
            source,
        })?;
        Results::from_json(&text, &name)
    }

    /// Parses results JSON; `name` is used in error messages.
    pub fn from_json(text: &str, name: &str) -> Result<Results, ResultsError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| ResultsError::Json {
                path: name.to_owned(),
                source,
            })?;
        let found = value
            .get("schema")
            .and_then(|s| s.as_str())
            .unwrap_or("(none)");
        if found != SCHEMA {
            return Err(ResultsError::Schema {
                path: name.to_owned(),
                found: found.to_owned(),
            });
        }
        let mut results: Results =
            serde_json::from_value(value).map_err(|source| ResultsError::Shape {
                path: name.to_owned(),
                source,
            })?;
        // The points are the record; the aggregates are recomputed so they always match them.
        results.refresh_aggregates();
        Ok(results)
    }

    /// Writes the file atomically (temporary file + rename), so an interrupted write never
    /// leaves half a file.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let text = serde_json::to_string_pretty(self).context("serializing results")?;
        netio::fs::write_atomically(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Aggregates of one system, in file order.
    pub fn aggregates_of(&self, system: &System) -> impl Iterator<Item = &Aggregate> + '_ {
        let system = system.clone();
        self.aggregates
            .iter()
            .filter(move |a| a.key.system == system)
    }

    /// Systems present in the results, in report order (by kind, then build).
    pub fn systems(&self) -> Vec<System> {
        let mut systems: Vec<System> = Vec::new();
        for p in &self.points {
            if !systems.contains(&p.point.system) {
                systems.push(p.point.system.clone());
            }
        }
        systems.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        systems
    }

    /// (repeat, value) of `metric` for `point`: the repeats its numbers come from (measured
    /// repeats, valid ones only when its few bound ones were left out).
    pub fn samples(
        &self,
        point: &Aggregate,
        metric: impl Fn(&PointResult) -> Option<f64>,
    ) -> Vec<(u32, f64)> {
        let excluding = point.excluded > 0;
        self.points
            .iter()
            .filter(|p| {
                p.point.key() == point.key && aggregate::counts_in_numbers(&p.status, excluding)
            })
            .filter_map(|p| Some((p.point.repeat, metric(p)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario::parse(
            "name = \"t\"\nsystems = [\"relay/pool\"]\nstreams = [10]\nrepeats = 2\n",
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn round_trip_and_schema_check() {
        let s = scenario();
        let mut r = Results::new(&s, Path::new("t.toml"), Environment::default());
        for (i, point) in s.points().into_iter().enumerate() {
            let mut p = PointResult::empty(point, Status::Ok);
            p.offered = 2000;
            p.delivered = 1990 + i as u64 * 10;
            p.usage = Some(Usage {
                cpu_s: 0.5,
                ..Usage::default()
            });
            p.derive();
            r.points.push(p);
        }
        r.refresh_aggregates();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"schema\":\"mcast-lab.results/2\""));
        let back = Results::from_json(&text, "x.json").unwrap();
        // serde_json may differ in a float's last ulp after a round trip; compare the rest.
        assert_eq!(back.points.len(), 2);
        assert_eq!(back.points[0].point, r.points[0].point);
        assert_eq!(back.points[1].delivered, 2000);
        assert_eq!(back.scenario, r.scenario);
        let agg = &back.aggregates[0];
        assert_eq!((agg.repeats, agg.ok), (2, 2));
        let d = agg.delivered_pct.unwrap();
        assert!((d.min - 99.5).abs() < 1e-9 && (d.max - 100.0).abs() < 1e-9);
        assert!((d.mean - 99.75).abs() < 1e-9);
        assert!(d.ci95.is_some(), "two repeats give an interval");
        let cpu = agg.cpu_s_per_mpkt.unwrap();
        assert!((cpu.max - 0.5e6 / 1990.0).abs() < 1e-6);
        assert_eq!(back.points[0].cpu_basis, Some(CpuBasis::Processes));

        let other = text.replace("mcast-lab.results/2", "mcast-lab.results/1");
        let err = Results::from_json(&other, "old.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("old.json") && err.contains("mcast-lab.results/1"),
            "{err}"
        );
        let err = Results::from_json("{\"points\":[]}", "n.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("(none)"), "{err}");
    }

    #[test]
    fn status_serializes_with_reason() {
        let s = serde_json::to_string(&Status::Skipped {
            reason: "socat not installed".into(),
        })
        .unwrap();
        assert_eq!(s, r#"{"kind":"skipped","reason":"socat not installed"}"#);
        let s = serde_json::to_string(&Status::GeneratorBound {
            reason: "sent 26.7k of 50k pps".into(),
        })
        .unwrap();
        assert_eq!(
            s,
            r#"{"kind":"generator_bound","reason":"sent 26.7k of 50k pps"}"#
        );
    }

    #[test]
    fn failed_repeats_are_left_out_of_the_stats_but_listed() {
        let s = scenario();
        let pts = s.points();
        let mut a = PointResult::empty(pts[0].clone(), Status::Ok);
        a.offered = 100;
        a.delivered = 100;
        a.derive();
        let b = PointResult::empty(
            pts[1].clone(),
            Status::Failed {
                reason: "relay did not start".into(),
            },
        );
        let agg = aggregate(&[a, b]);
        assert_eq!(agg.len(), 1);
        assert_eq!(agg[0].ok, 1);
        assert_eq!(agg[0].delivered_pct.unwrap().n, 1);
        assert_eq!(agg[0].problems, ["relay did not start"]);
    }

    #[test]
    fn bound_repeats_keep_their_numbers_but_the_point_is_not_valid() {
        let s = scenario();
        let pts = s.points();
        let mut a = PointResult::empty(pts[0].clone(), Status::Ok);
        a.offered = 100;
        a.delivered = 100;
        a.derive();
        let mut b = PointResult::empty(
            pts[1].clone(),
            Status::GeneratorBound {
                reason: "sent 22 % of the asked rate".into(),
            },
        );
        b.offered = 50;
        b.delivered = 50;
        b.derive();
        let agg = &aggregate(&[a, b])[0];
        assert_eq!((agg.ok, agg.generator_bound, agg.measured()), (1, 1, 2));
        assert!(!agg.is_valid() && agg.is_generator_bound());
        assert_eq!(agg.delivered_pct.unwrap().n, 2);
    }

    #[test]
    fn one_sink_bound_repeat_of_eight_is_left_out_and_the_point_keeps_its_verdict() {
        let s = Scenario::parse(
            "name = \"t\"\nsystems = [\"relay/pool\"]\nstreams = [10]\nrepeats = 8\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let results: Vec<PointResult> = s
            .points()
            .into_iter()
            .enumerate()
            .map(|(i, point)| {
                let status = if i == 3 {
                    Status::SinkBound {
                        reason: "the sinks' host dropped 0.5 %".into(),
                    }
                } else {
                    Status::Ok
                };
                let mut p = PointResult::empty(point, status);
                p.offered = 1000;
                p.delivered = if i == 3 { 900 } else { 1000 };
                p.derive();
                p
            })
            .collect();
        let agg = &aggregate(&results)[0];
        assert_eq!((agg.ok, agg.sink_bound, agg.excluded), (7, 1, 1));
        assert!(agg.is_valid() && !agg.is_sink_bound());
        let delivered = agg.delivered_pct.unwrap();
        assert_eq!((delivered.n, delivered.mean), (7, 100.0));
        let mut run = Results::new(&s, Path::new("t.toml"), Environment::default());
        run.points = results.clone();
        let samples = run.samples(agg, |p| p.delivered_pct);
        assert_eq!(samples.len(), 7);
        assert!(samples.iter().all(|(repeat, _)| *repeat != 3));
    }

    #[test]
    fn bound_repeats_beyond_a_quarter_make_the_point_bound() {
        assert_eq!(aggregate::excluded_repeats(12, 4), 4);
        assert_eq!(aggregate::excluded_repeats(11, 5), 0);
        assert_eq!(aggregate::excluded_repeats(1, 0), 0);
        // One valid repeat is not enough to stand for the point.
        assert_eq!(aggregate::excluded_repeats(1, 1), 0);
        assert_eq!(aggregate::excluded_repeats(3, 1), 1);
    }

    #[test]
    fn sink_loss_is_not_charged_to_the_system() {
        let s = scenario();
        let mut p = PointResult::empty(s.points().remove(0), Status::Ok);
        p.offered = 1000;
        p.delivered = 900;
        p.sink_lost = 100;
        p.derive();
        assert_eq!(p.lost, 0);
        assert_eq!(p.delivered_pct, Some(100.0));
        p.sink_lost = 40;
        p.derive();
        assert_eq!(p.lost, 60);
        assert_eq!(p.delivered_pct, Some(94.0));
    }

    #[test]
    fn cpu_comes_from_the_systems_cpus_when_isolated() {
        let s = scenario();
        let mut p = PointResult::empty(s.points().remove(0), Status::Ok);
        p.offered = 2_000_000;
        p.delivered = 2_000_000;
        p.usage = Some(Usage {
            cpu_s: 1.0,
            ..Usage::default()
        });
        let cpu = |n, busy| CpuTimes {
            cpu: n,
            busy,
            system: busy * 0.25,
            softirq: busy * 0.75,
            ..CpuTimes::default()
        };
        p.cpu = Some(MachineCpu {
            window_s: 2.0,
            cpus: vec![cpu(0, 1.8), cpu(1, 1.6)],
            sut_cpus: vec![1],
            loadgen_cpus: vec![0],
        });
        p.derive();
        assert_eq!(p.cpu_basis, Some(CpuBasis::SutCpus));
        assert!((p.cpu_s_per_mpkt.unwrap() - 0.8).abs() < 1e-9);
        assert!((p.process_cpu_s_per_mpkt.unwrap() - 0.5).abs() < 1e-9);
        let machine = p.cpu.as_ref().unwrap();
        assert!((machine.total_busy() - 3.4).abs() < 1e-9);
        assert!((machine.loadgen_busy().unwrap() - 1.8).abs() < 1e-9);
    }
}
