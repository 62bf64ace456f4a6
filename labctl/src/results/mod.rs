//! `results.json`: what a sweep measured, versioned (`"schema": "mcast-lab.results/1"`).
//!
//! One [`PointResult`] per measured point (repeats included), the [`Aggregate`]s over repeats,
//! the scenario as parsed and the [`Environment`] the numbers were taken on. `labctl report` and
//! `labctl compare` read this file; loading a file of another schema version is a clear error.

use crate::scenario::{Point, PointKey, Scenario, SystemKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Schema tag of this version of the file.
pub const SCHEMA: &str = "mcast-lab.results/1";

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
    pub points: Vec<PointResult>,
    /// Mean and spread per point over its repeats (recomputed by [`Results::refresh_aggregates`]).
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

/// Outcome of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed { reason: String },
    Skipped { reason: String },
}

impl Status {
    pub fn is_ok(&self) -> bool {
        matches!(self, Status::Ok)
    }

    /// Short label for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed { .. } => "failed",
            Status::Skipped { .. } => "skipped",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Status::Ok => None,
            Status::Failed { reason } | Status::Skipped { reason } => Some(reason),
        }
    }
}

/// Forwarding latency percentiles, nanoseconds (sender's send time to the sink's receive time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
}

/// Membership capacity seen while installing rules one at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Groups (rules) tried.
    pub tried: u32,
    /// Groups accepted before the first refusal (all of them when none was refused).
    pub accepted: u32,
    /// 0-based index of the first refused group, if any.
    pub first_refused: Option<u32>,
    /// The refused group's address.
    pub refused_group: Option<String>,
    /// errno of the refusal (105 = ENOBUFS).
    pub errno: Option<i32>,
    /// The refusal's message.
    pub error: Option<String>,
}

/// What the system's processes used, from `/proc/PID/{stat,status,fd}` sampled during the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// utime + stime of every process of the system (children included), seconds.
    pub cpu_s: f64,
    /// Highest sum of VmRSS over the processes, KiB.
    pub peak_rss_kib: u64,
    /// Most processes seen at once.
    pub processes: u32,
    /// Most open file descriptors seen at once (summed over processes).
    pub fds: u32,
}

/// One measured point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointResult {
    #[serde(flatten)]
    pub point: Point,
    pub status: Status,
    /// Packets the sink should have received: packets sent x outputs per input.
    pub offered: u64,
    /// Packets received at the sink (duplicates not counted).
    pub delivered: u64,
    /// delivered / offered x 100; `None` when nothing was offered.
    pub delivered_pct: Option<f64>,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Aggregate send rate achieved by the sender.
    pub sent_pps: Option<f64>,
    pub latency_ns: Option<Latency>,
    pub capacity: Option<Capacity>,
    /// Rule added -> first packet of that group at the sink, milliseconds (median over the timed
    /// groups: the last rules installed, see `sweep::join_delay`).
    pub join_delay_ms: Option<f64>,
    /// The largest join delay of the timed groups, milliseconds.
    #[serde(default)]
    pub join_delay_max_ms: Option<f64>,
    pub usage: Option<Usage>,
    /// CPU seconds per million delivered packets.
    pub cpu_s_per_mpkt: Option<f64>,
    /// CPU seconds of the load generator (sender + sink) per million delivered packets: the
    /// same-run yardstick `compare` divides by, so that a slower machine is not a regression.
    #[serde(default)]
    pub loadgen_cpu_s_per_mpkt: Option<f64>,
    /// Highest aggregate rate with loss under the threshold, when searched.
    pub zero_loss_pps: Option<f64>,
    /// Free-form notes (e.g. "kernel forwards the input group; outputs not renamed").
    #[serde(default)]
    pub notes: Vec<String>,
}

impl PointResult {
    /// A result with no measurement yet (counters zero).
    pub fn empty(point: Point, status: Status) -> PointResult {
        PointResult {
            point,
            status,
            offered: 0,
            delivered: 0,
            delivered_pct: None,
            lost: 0,
            duplicates: 0,
            reordered: 0,
            sent_pps: None,
            latency_ns: None,
            capacity: None,
            join_delay_ms: None,
            join_delay_max_ms: None,
            usage: None,
            cpu_s_per_mpkt: None,
            loadgen_cpu_s_per_mpkt: None,
            zero_loss_pps: None,
            notes: Vec::new(),
        }
    }

    /// Fills `delivered_pct` and `cpu_s_per_mpkt` from the counters.
    pub fn derive(&mut self) {
        self.delivered_pct =
            (self.offered > 0).then(|| self.delivered as f64 * 100.0 / self.offered as f64);
        self.cpu_s_per_mpkt = match self.usage {
            Some(u) if self.delivered > 0 => Some(u.cpu_s * 1e6 / self.delivered as f64),
            _ => None,
        };
    }

    /// True when the capacity probe saw a refusal with ENOBUFS.
    pub fn hit_enobufs(&self) -> bool {
        self.capacity
            .as_ref()
            .is_some_and(|c| c.errno == Some(libc::ENOBUFS))
    }
}

/// Mean and spread of one metric over a point's repeats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub stddev: f64,
    /// Number of repeats that had a value.
    pub n: u32,
}

impl Stat {
    /// Statistics of the values; `None` for no values.
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(Stat {
            mean,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            stddev: var.sqrt(),
            n: values.len() as u32,
        })
    }

    /// Half the min..max range: the noise band used by `compare`.
    pub fn half_range(&self) -> f64 {
        (self.max - self.min) / 2.0
    }

    /// [`Stat::half_range`] relative to the mean (0 when the mean is 0).
    pub fn relative_noise(&self) -> f64 {
        if self.mean.abs() > f64::EPSILON {
            self.half_range() / self.mean.abs()
        } else {
            0.0
        }
    }
}

/// A point over its repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    #[serde(flatten)]
    pub key: PointKey,
    pub repeats: u32,
    pub ok: u32,
    /// Repeats skipped (a tool missing), as opposed to failed.
    #[serde(default)]
    pub skipped: u32,
    pub delivered_pct: Option<Stat>,
    /// Aggregate rate the sender achieved (compare with rate_pps x streams).
    #[serde(default)]
    pub sent_pps: Option<Stat>,
    pub cpu_s_per_mpkt: Option<Stat>,
    #[serde(default)]
    pub loadgen_cpu_s_per_mpkt: Option<Stat>,
    pub latency_p99_ns: Option<Stat>,
    pub peak_rss_kib: Option<Stat>,
    pub processes: Option<Stat>,
    pub fds: Option<Stat>,
    pub zero_loss_pps: Option<Stat>,
    pub join_delay_ms: Option<Stat>,
    /// Worst join delay of each repeat.
    #[serde(default)]
    pub join_delay_max_ms: Option<Stat>,
    /// Lowest first-refused index over the repeats (membership capacity), if any refused.
    pub first_refused: Option<u32>,
    /// errno of that refusal.
    pub refused_errno: Option<i32>,
    /// Reasons of failed/skipped repeats (deduplicated).
    pub problems: Vec<String>,
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
            let ok: Vec<&PointResult> =
                group.iter().copied().filter(|p| p.status.is_ok()).collect();
            let stat = |f: &dyn Fn(&PointResult) -> Option<f64>| {
                Stat::of(&ok.iter().filter_map(|p| f(p)).collect::<Vec<_>>())
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
                ok: ok.len() as u32,
                skipped: group
                    .iter()
                    .filter(|p| matches!(p.status, Status::Skipped { .. }))
                    .count() as u32,
                delivered_pct: stat(&|p| p.delivered_pct),
                sent_pps: stat(&|p| p.sent_pps),
                cpu_s_per_mpkt: stat(&|p| p.cpu_s_per_mpkt),
                loadgen_cpu_s_per_mpkt: stat(&|p| p.loadgen_cpu_s_per_mpkt),
                latency_p99_ns: stat(&|p| p.latency_ns.map(|l| l.p99 as f64)),
                peak_rss_kib: stat(&|p| p.usage.map(|u| u.peak_rss_kib as f64)),
                processes: stat(&|p| p.usage.map(|u| f64::from(u.processes))),
                fds: stat(&|p| p.usage.map(|u| f64::from(u.fds))),
                zero_loss_pps: stat(&|p| p.zero_loss_pps),
                join_delay_ms: stat(&|p| p.join_delay_ms),
                join_delay_max_ms: stat(&|p| p.join_delay_max_ms),
                first_refused: refused.map(|(i, _)| i),
                refused_errno: refused.and_then(|(_, e)| e),
                problems,
                key,
            }
        })
        .collect()
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
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).context("serializing results")?;
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }

    /// Aggregates of one system, in file order.
    pub fn aggregates_of(&self, system: SystemKind) -> impl Iterator<Item = &Aggregate> {
        self.aggregates
            .iter()
            .filter(move |a| a.key.system == system)
    }

    /// Systems present in the results, in report order.
    pub fn systems(&self) -> Vec<SystemKind> {
        SystemKind::ALL
            .into_iter()
            .filter(|s| self.points.iter().any(|p| p.point.system == *s))
            .collect()
    }
}

/// Now as `2026-11-25T03:50:00Z`.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// `time` as RFC 3339 UTC with second precision.
pub fn rfc3339(time: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(time);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `time` as a compact UTC stamp for directory names: `20261125T035000Z`.
pub fn compact_stamp(time: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(time);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// (year, month, day, hour, minute, second) in UTC (Howard Hinnant's days-from-civil inverse).
fn civil(time: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn scenario() -> Scenario {
        Scenario::parse(
            "name = \"t\"\nsystems = [\"relay/pool\"]\nstreams = [10]\nrepeats = 2\n",
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn timestamps_are_utc_civil_time() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_578_600);
        assert_eq!(rfc3339(t), "2026-11-25T03:50:00Z");
        assert_eq!(compact_stamp(t), "20261125T035000Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
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
        assert!(text.contains("\"schema\":\"mcast-lab.results/1\""));
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
        let cpu = agg.cpu_s_per_mpkt.unwrap();
        assert!((cpu.max - 0.5e6 / 1990.0).abs() < 1e-6);

        let other = text.replace("mcast-lab.results/1", "mcast-lab.results/2");
        let err = Results::from_json(&other, "old.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("old.json") && err.contains("mcast-lab.results/2"),
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
}
