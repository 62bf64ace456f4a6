//! Scenario files: what a sweep measures.
//!
//! A scenario is a TOML file (see `scenarios/README.md` for the schema and its defaults). It names
//! the systems under test and the axes of the sweep (streams, fan-out, sysctl variants, rate,
//! payload size); [`Scenario::points`] expands it into the list of [`Point`]s, repeats included.
//!
//! Parse errors name the file, the line and column, and the field, so a typo is fixed in one look.
//! Unknown fields are rejected.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Directory (relative to the workspace root) where the shipped scenarios live.
pub const SCENARIO_DIR: &str = "scenarios";

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SystemKind {
    /// This relay with its helper-socket pool.
    #[serde(rename = "relay/pool")]
    RelayPool,
    /// This relay with one helper socket per interface (the legacy design).
    #[serde(rename = "relay/single")]
    RelaySingle,
    /// One helper socket per interface with 8 MB forced buffers (the proposed fix).
    #[serde(rename = "relay/single-8mb")]
    RelaySingle8mb,
    /// Real socat, one process per stream and output.
    #[serde(rename = "socat")]
    Socat,
    /// Kernel multicast routing driven by smcroute.
    #[serde(rename = "kernel")]
    Kernel,
    /// Sender straight to the sink, no relay: the machine's ceiling.
    #[serde(rename = "direct")]
    Direct,
}

impl SystemKind {
    /// Every system, in report order.
    pub const ALL: [SystemKind; 6] = [
        SystemKind::RelayPool,
        SystemKind::RelaySingle,
        SystemKind::RelaySingle8mb,
        SystemKind::Socat,
        SystemKind::Kernel,
        SystemKind::Direct,
    ];

    /// The name used in scenario files, results and reports.
    pub fn name(self) -> &'static str {
        match self {
            SystemKind::RelayPool => "relay/pool",
            SystemKind::RelaySingle => "relay/single",
            SystemKind::RelaySingle8mb => "relay/single-8mb",
            SystemKind::Socat => "socat",
            SystemKind::Kernel => "kernel",
            SystemKind::Direct => "direct",
        }
    }

    /// True for the three configurations of this project's relay.
    pub fn is_relay(self) -> bool {
        matches!(
            self,
            SystemKind::RelayPool | SystemKind::RelaySingle | SystemKind::RelaySingle8mb
        )
    }
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Topology template a scenario runs on (the `direct` system always uses the direct template, and
/// a fan-out above 1 adds that many egress links).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TopologyKind {
    /// gen -- relay -- sink on plain veths.
    Chain,
    /// gen -- snooping bridge -- relay -- sink: a group reaches the relay only after its join.
    #[default]
    Snooping,
}

/// A named set of per-namespace sysctls for the relay namespace (one axis of the sweep).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysctlVariant {
    /// Short name shown in results and reports, e.g. `default` or `raised`.
    pub name: String,
    /// Sysctl name -> value, applied on top of the scenario's `sysctls`.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
}

/// Zero-loss throughput search: a binary search on the per-stream rate for the highest rate whose
/// loss stays at or under the scenario's `loss_threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroLossSearch {
    /// Lowest aggregate rate tried (packets per second over all streams).
    pub min_pps: f64,
    /// Highest aggregate rate tried.
    pub max_pps: f64,
    /// Number of bisection steps after the first probe at `max_pps`.
    #[serde(default = "default_iterations")]
    pub iterations: u32,
    /// Duration of each probe in seconds (defaults to the scenario's `duration_s`).
    #[serde(default)]
    pub duration_s: Option<f64>,
}

/// Membership capacity probe: rules are added one at a time up to `max_groups`; the first refused
/// rule (and its errno) is the system's capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityProbe {
    /// Most groups to try.
    pub max_groups: u32,
    /// Also send traffic after the probe (delivered % of the groups that were accepted).
    #[serde(default)]
    pub send_traffic: bool,
}

/// Tolerances of the regression gate (`labctl compare`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareTolerances {
    /// Largest allowed absolute drop of delivered %, in percentage points, beyond the noise.
    #[serde(default = "default_delivered_drop")]
    pub delivered_drop_pct: f64,
    /// Largest allowed relative worsening of a ratio against a same-run baseline (0.25 = 25 %).
    #[serde(default = "default_ratio_tolerance")]
    pub ratio_tolerance: f64,
}

impl Default for CompareTolerances {
    fn default() -> Self {
        CompareTolerances {
            delivered_drop_pct: default_delivered_drop(),
            ratio_tolerance: default_ratio_tolerance(),
        }
    }
}

/// A parsed scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name; used in the report directory name.
    pub name: String,
    /// One or two sentences: what the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Systems under test.
    pub systems: Vec<SystemKind>,
    /// Input stream counts.
    pub streams: Vec<u32>,
    /// Outputs per input.
    #[serde(default = "default_fanout")]
    pub fanout: Vec<u32>,
    /// Packets per second per stream.
    #[serde(default = "default_rate")]
    pub rate_pps: Vec<f64>,
    /// UDP payload sizes in bytes (64..=8972).
    #[serde(default = "default_size")]
    pub size: Vec<u32>,
    /// Seconds of traffic per point.
    #[serde(default = "default_duration")]
    pub duration_s: f64,
    /// How many times each point is measured.
    #[serde(default = "default_repeats")]
    pub repeats: u32,
    /// Topology template.
    #[serde(default)]
    pub topology: TopologyKind,
    /// Per-namespace sysctls for the relay namespace, applied at every point.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// Named sysctl sets compared against each other (default: one variant `default`).
    #[serde(default)]
    pub variants: Vec<SysctlVariant>,
    /// Loss fraction under which a point counts as lossless (0.001 = 0.1 %).
    #[serde(default = "default_loss_threshold")]
    pub loss_threshold: f64,
    /// Optional zero-loss throughput search at every point.
    #[serde(default)]
    pub zero_loss: Option<ZeroLossSearch>,
    /// Optional membership capacity probe.
    #[serde(default)]
    pub capacity: Option<CapacityProbe>,
    /// Regression-gate tolerances.
    #[serde(default)]
    pub compare: CompareTolerances,
}

fn default_fanout() -> Vec<u32> {
    vec![1]
}
fn default_rate() -> Vec<f64> {
    vec![200.0]
}
fn default_size() -> Vec<u32> {
    vec![1000]
}
fn default_duration() -> f64 {
    3.0
}
fn default_repeats() -> u32 {
    1
}
fn default_loss_threshold() -> f64 {
    0.001
}
fn default_iterations() -> u32 {
    6
}
fn default_delivered_drop() -> f64 {
    1.0
}
fn default_ratio_tolerance() -> f64 {
    0.25
}

/// Name of the implied variant when a scenario lists none.
pub const DEFAULT_VARIANT: &str = "default";

/// One measurement of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub system: SystemKind,
    pub streams: u32,
    pub fanout: u32,
    /// Name of the sysctl variant.
    pub variant: String,
    pub rate_pps: f64,
    pub size: u32,
    /// 0-based repeat index.
    pub repeat: u32,
}

impl Point {
    /// The point without its repeat index, for grouping repeats.
    pub fn key(&self) -> PointKey {
        PointKey {
            system: self.system,
            streams: self.streams,
            fanout: self.fanout,
            variant: self.variant.clone(),
            rate_pps: self.rate_pps,
            size: self.size,
        }
    }

    /// Packets offered per second over all streams.
    pub fn total_pps(&self) -> f64 {
        self.rate_pps * f64::from(self.streams)
    }
}

/// A point minus its repeat index: the unit of aggregation and comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointKey {
    pub system: SystemKind,
    pub streams: u32,
    pub fanout: u32,
    pub variant: String,
    pub rate_pps: f64,
    pub size: u32,
}

impl fmt::Display for PointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} streams={} fanout={} variant={} rate={}pps size={}B",
            self.system, self.streams, self.fanout, self.variant, self.rate_pps, self.size
        )
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} #{}", self.key(), self.repeat + 1)
    }
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: field `{field}`: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        field: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "no scenario named `{name}` (looked for {tried}); give a path to a .toml file or one of: {known}"
    )]
    NotFound {
        name: String,
        tried: String,
        known: String,
    },
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(&text, path)
    }

    /// Parses and validates scenario text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|err| parse_error(text, path, &err))?;
        scenario
            .validate()
            .map_err(|message| ScenarioError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        Ok(scenario)
    }

    /// Finds a scenario by name (`quick` -> `scenarios/quick.toml`) or path.
    ///
    /// Names are looked up in `./scenarios/` and in the workspace's `scenarios/` directory.
    pub fn resolve(name_or_path: &str) -> Result<PathBuf, ScenarioError> {
        let as_path = Path::new(name_or_path);
        if name_or_path.ends_with(".toml") || name_or_path.contains('/') {
            return Ok(as_path.to_path_buf());
        }
        let candidates = scenario_dirs()
            .into_iter()
            .map(|dir| dir.join(format!("{name_or_path}.toml")))
            .collect::<Vec<_>>();
        if let Some(found) = candidates.iter().find(|p| p.is_file()) {
            return Ok(found.clone());
        }
        let known = scenario_dirs()
            .iter()
            .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
            .filter_map(|e| {
                let p = e.path();
                (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(str::to_owned))?
            })
            .collect::<std::collections::BTreeSet<_>>();
        Err(ScenarioError::NotFound {
            name: name_or_path.to_owned(),
            tried: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            known: if known.is_empty() {
                "(none found)".to_owned()
            } else {
                known.into_iter().collect::<Vec<_>>().join(", ")
            },
        })
    }

    /// The sysctl variants, with the implied `default` variant when none is listed.
    pub fn variants(&self) -> Vec<SysctlVariant> {
        if self.variants.is_empty() {
            vec![SysctlVariant {
                name: DEFAULT_VARIANT.to_owned(),
                sysctls: BTreeMap::new(),
            }]
        } else {
            self.variants.clone()
        }
    }

    /// The relay namespace's sysctls for a variant: the scenario's, overridden by the variant's.
    pub fn sysctls_for(&self, variant: &str) -> BTreeMap<String, String> {
        let mut all = self.sysctls.clone();
        if let Some(v) = self.variants.iter().find(|v| v.name == variant) {
            all.extend(v.sysctls.clone());
        }
        all
    }

    /// Every point of the sweep: system x streams x fan-out x variant x rate x size, each
    /// `repeats` times. Repeats of one point are adjacent. The `direct` system has no relay and
    /// no copies: it is measured at every fan-out anyway, as the same-run ceiling that
    /// `compare` divides by.
    pub fn points(&self) -> Vec<Point> {
        let variants = self.variants();
        let mut points = Vec::new();
        for &system in &self.systems {
            for &streams in &self.streams {
                for &fanout in &self.fanout {
                    for variant in &variants {
                        for &rate_pps in &self.rate_pps {
                            for &size in &self.size {
                                for repeat in 0..self.repeats {
                                    points.push(Point {
                                        system,
                                        streams,
                                        fanout,
                                        variant: variant.name.clone(),
                                        rate_pps,
                                        size,
                                        repeat,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        points
    }

    /// Rough wall-clock estimate of the sweep in seconds (traffic plus setup per point).
    pub fn estimated_seconds(&self) -> f64 {
        const SETUP_S: f64 = 4.0;
        let probes = self
            .zero_loss
            .as_ref()
            .map_or(1.0, |z| f64::from(z.iterations) + 2.0);
        let per_probe = self
            .zero_loss
            .as_ref()
            .and_then(|z| z.duration_s)
            .unwrap_or(self.duration_s);
        self.points().len() as f64 * (SETUP_S + self.duration_s + (probes - 1.0) * per_probe)
    }

    fn validate(&self) -> Result<(), String> {
        fn non_empty<T>(field: &str, v: &[T]) -> Result<(), String> {
            if v.is_empty() {
                Err(format!(
                    "field `{field}`: list is empty; give at least one value"
                ))
            } else {
                Ok(())
            }
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "field `name`: {:?} must be non-empty and use only letters, digits, '-' and '_'",
                self.name
            ));
        }
        non_empty("systems", &self.systems)?;
        non_empty("streams", &self.streams)?;
        non_empty("fanout", &self.fanout)?;
        non_empty("rate_pps", &self.rate_pps)?;
        non_empty("size", &self.size)?;
        if let Some(s) = self.streams.iter().find(|&&s| s == 0 || s > 65_000) {
            return Err(format!("field `streams`: {s} is out of range 1..=65000"));
        }
        if let Some(f) = self.fanout.iter().find(|&&f| f == 0 || f > 200) {
            return Err(format!("field `fanout`: {f} is out of range 1..=200"));
        }
        if let Some(r) = self.rate_pps.iter().find(|&&r| !(r.is_finite() && r > 0.0)) {
            return Err(format!("field `rate_pps`: {r} must be a positive number"));
        }
        if let Some(s) = self.size.iter().find(|&&s| !(64..=8972).contains(&s)) {
            return Err(format!("field `size`: {s} is out of range 64..=8972 bytes"));
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0 && self.duration_s <= 600.0) {
            return Err(format!(
                "field `duration_s`: {} is out of range (0, 600] seconds",
                self.duration_s
            ));
        }
        if self.repeats == 0 || self.repeats > 100 {
            return Err(format!(
                "field `repeats`: {} is out of range 1..=100",
                self.repeats
            ));
        }
        if !(0.0..1.0).contains(&self.loss_threshold) {
            return Err(format!(
                "field `loss_threshold`: {} must be a fraction in [0, 1), e.g. 0.001",
                self.loss_threshold
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for v in &self.variants {
            if !names.insert(v.name.as_str()) {
                return Err(format!("field `variants`: name {:?} is used twice", v.name));
            }
        }
        for key in self
            .sysctls
            .keys()
            .chain(self.variants.iter().flat_map(|v| v.sysctls.keys()))
        {
            if !is_namespaced_sysctl(key) {
                return Err(format!(
                    "field `sysctls`: {key:?} is not a per-namespace sysctl the lab may set \
                     (allowed: net.ipv4.*, net.ipv6.*, net.core.optmem_max, net.core.somaxconn)"
                ));
            }
        }
        if let Some(z) = &self.zero_loss
            && !(z.min_pps > 0.0 && z.max_pps > z.min_pps && z.iterations <= 30)
        {
            return Err(
                "field `zero_loss`: need 0 < min_pps < max_pps and iterations <= 30".to_owned(),
            );
        }
        if let Some(c) = &self.capacity
            && (c.max_groups == 0 || c.max_groups > 65_000)
        {
            return Err(format!(
                "field `capacity.max_groups`: {} is out of range 1..=65000",
                c.max_groups
            ));
        }
        Ok(())
    }
}

/// Sysctls that are per network namespace and therefore safe to set in a lab namespace.
/// `net.core.rmem_max` and friends are global and must never be written (LAB-RULES.md rule 6).
pub fn is_namespaced_sysctl(key: &str) -> bool {
    key.starts_with("net.ipv4.")
        || key.starts_with("net.ipv6.")
        || key == "net.core.optmem_max"
        || key == "net.core.somaxconn"
}

fn scenario_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(SCENARIO_DIR)];
    // The workspace root, as compiled in (labctl/..).
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(SCENARIO_DIR);
    if workspace.is_dir() {
        dirs.push(workspace);
    }
    dirs
}

fn parse_error(text: &str, path: &Path, err: &toml::de::Error) -> ScenarioError {
    let offset = err.span().map_or(0, |s| s.start).min(text.len());
    let (line, column) = line_column(text, offset);
    let message = err.message().trim().to_owned();
    let field = field_name(text, offset, &message);
    ScenarioError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        field,
        message,
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, offset - line_start + 1)
}

/// The field an error is about: the key on the error's line (`key = value`), else the name in
/// backticks in serde's message (`missing field `name``), else the enclosing table.
fn field_name(text: &str, offset: usize, message: &str) -> String {
    let line_start = text[..offset].rfind('\n').map_or(0, |p| p + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |p| offset + p);
    let line = &text[line_start..line_end];
    if message.starts_with("unknown field")
        || message.starts_with("missing field")
        || !line.contains('=')
    {
        if let Some(name) = message.split('`').nth(1) {
            return name.to_owned();
        }
    }
    if let Some((key, _)) = line.split_once('=') {
        let key = key.trim().trim_matches('"');
        if !key.is_empty() {
            return key.to_owned();
        }
    }
    let table = line.trim();
    if table.starts_with('[') {
        return table.trim_matches(|c| c == '[' || c == ']').to_owned();
    }
    "(document)".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(SCENARIO_DIR)
    }

    #[test]
    fn every_shipped_scenario_parses() {
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(shipped_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert!(!s.points().is_empty(), "{} has no points", path.display());
                assert_eq!(
                    path.file_stem().unwrap().to_str().unwrap(),
                    s.name,
                    "file name and scenario name differ"
                );
                seen.push(s.name);
            }
        }
        seen.sort();
        assert_eq!(seen, ["ci", "enobufs", "fanout", "quick", "scale"]);
    }

    #[test]
    fn quick_is_the_headline_and_ci_is_short() {
        let quick = Scenario::load(&shipped_dir().join("quick.toml")).unwrap();
        for s in SystemKind::ALL {
            assert!(quick.systems.contains(&s), "quick lacks {s}");
        }
        let ci = Scenario::load(&shipped_dir().join("ci.toml")).unwrap();
        assert!(
            ci.estimated_seconds() < 600.0,
            "ci estimate {}s",
            ci.estimated_seconds()
        );
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = "name = \"x\"\nsystems = [\"kernel\"]\nstreams = [1]\nrate_ppz = [5]\n";
        let err = Scenario::parse(text, Path::new("bad.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("bad.toml:4:1: field `rate_ppz`"), "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_field_and_line() {
        let text = "name = \"x\"\nsystems = [\"kernel\"]\n\nstreams = [\"ten\"]\n";
        let msg = Scenario::parse(text, Path::new("s/bad.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("s/bad.toml:4:"), "{msg}");
        assert!(msg.contains("field `streams`"), "{msg}");
    }

    #[test]
    fn unknown_system_is_named() {
        let text = "name = \"x\"\nsystems = [\"relay/pool\", \"ncat\"]\nstreams = [1]\n";
        let msg = Scenario::parse(text, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("a.toml:2:"), "{msg}");
        assert!(
            msg.contains("field `systems`") && msg.contains("ncat"),
            "{msg}"
        );
    }

    #[test]
    fn missing_field_is_named() {
        let msg = Scenario::parse("name = \"x\"\nstreams = [1]\n", Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("m.toml:") && msg.contains("field `systems`"),
            "{msg}"
        );
    }

    #[test]
    fn nested_table_errors_name_the_field() {
        let text = "name = \"x\"\nsystems = [\"kernel\"]\nstreams = [1]\n[zero_loss]\nmin_pps = 1.0\nmax_pps = 2.0\nsteps = 3\n";
        let msg = Scenario::parse(text, Path::new("z.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("z.toml:7:1: field `steps`"), "{msg}");
    }

    #[test]
    fn global_sysctls_are_refused() {
        let text = "name = \"x\"\nsystems = [\"kernel\"]\nstreams = [1]\n[sysctls]\n\"net.core.rmem_max\" = \"8388608\"\n";
        let msg = Scenario::parse(text, Path::new("g.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("net.core.rmem_max"), "{msg}");
    }

    #[test]
    fn point_expansion_counts_every_axis() {
        let text = r#"
            name = "count"
            systems = ["relay/pool", "socat", "direct"]
            streams = [10, 40]
            fanout = [1, 2, 5]
            rate_pps = [100.0, 200.0]
            size = [64, 1000]
            repeats = 3
            [[variants]]
            name = "default"
            [[variants]]
            name = "raised"
            sysctls = { "net.ipv4.igmp_max_memberships" = "1024" }
        "#;
        let s = Scenario::parse(text, Path::new("count.toml")).unwrap();
        let points = s.points();
        assert_eq!(points.len(), 3 * 2 * 3 * 2 * 2 * 2 * 3);
        // Repeats of a point are adjacent and numbered from 0.
        assert_eq!(points[0].key(), points[2].key());
        assert_eq!(
            points[..3].iter().map(|p| p.repeat).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_ne!(points[2].key(), points[3].key());
        assert_eq!(
            s.sysctls_for("raised")["net.ipv4.igmp_max_memberships"],
            "1024"
        );
        assert!(s.sysctls_for("default").is_empty());
    }

    #[test]
    fn defaults_fill_the_optional_axes() {
        let s = Scenario::parse(
            "name = \"d\"\nsystems = [\"direct\"]\nstreams = [1, 2]\n",
            Path::new("d.toml"),
        )
        .unwrap();
        assert_eq!(s.fanout, [1]);
        assert_eq!(s.size, [1000]);
        assert_eq!(s.repeats, 1);
        assert_eq!(s.topology, TopologyKind::Snooping);
        assert_eq!(s.points().len(), 2);
        assert_eq!(s.points()[0].variant, DEFAULT_VARIANT);
    }
}
