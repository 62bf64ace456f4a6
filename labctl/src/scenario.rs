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

mod goals;
mod groups;
pub use goals::{Goal, GoalMetric};
pub use groups::PointGroup;

/// Directory (relative to the workspace root) where the shipped scenarios live.
pub const SCENARIO_DIR: &str = "scenarios";

/// A system under test.
///
/// Its names (scenario files, results, reports) are written once, in the `#[value(name)]`
/// attributes; serde, [`fmt::Display`] and [`std::str::FromStr`] all go through
/// [`clap::ValueEnum`], and the declaration order is the report order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    Serialize,
    Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub enum SystemKind {
    /// This relay with its helper-socket pool.
    #[value(name = "relay/pool")]
    RelayPool,
    /// This relay with one helper socket per interface (the legacy design).
    #[value(name = "relay/single")]
    RelaySingle,
    /// One helper socket per interface with 8 MB forced buffers (the proposed fix).
    #[value(name = "relay/single-8mb")]
    RelaySingle8mb,
    /// A system described by a definition file (`systems/NAME.toml`): socat, kernel routing
    /// and any other relay; [`System::definition`] names it.
    #[value(skip)]
    Defined,
    /// Sender straight to the sink, no relay: the machine's ceiling.
    #[value(name = "direct")]
    Direct,
}

impl SystemKind {
    /// Every built-in system, in report order (defined systems come before `direct`).
    pub fn all() -> &'static [SystemKind] {
        <SystemKind as clap::ValueEnum>::value_variants()
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
        match clap::ValueEnum::to_possible_value(self) {
            Some(value) => f.write_str(value.get_name()),
            None => f.write_str("defined"),
        }
    }
}

impl std::str::FromStr for SystemKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        <SystemKind as clap::ValueEnum>::from_str(text, false).map_err(|_| {
            let known: Vec<String> = SystemKind::all()
                .iter()
                .map(|k| k.to_string())
                .chain(crate::definition::shipped_names())
                .collect();
            format!(
                "unknown system {text:?}: use one of {}, or a definition file's path",
                known.join(", ")
            )
        })
    }
}

impl From<SystemKind> for String {
    fn from(kind: SystemKind) -> String {
        kind.to_string()
    }
}

impl TryFrom<String> for SystemKind {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// A system under test as a scenario names it: a built-in [`SystemKind`] (for this project's
/// relay optionally a named build, `relay/pool@base`: the relay binary and extra arguments of
/// `[builds.base]`), or a definition file by name (`socat` -> `systems/socat.toml`) or path.
/// Same-run A/B comparisons put two builds side by side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct System {
    pub kind: SystemKind,
    /// Name of a `[builds.NAME]` table; `None` = the current build with no extra arguments.
    pub build: Option<String>,
    /// With [`SystemKind::Defined`]: the definition's name or path, as the scenario gives it.
    pub definition: Option<String>,
}

/// Shipped definitions that come first in reports, in this order (the baselines).
const BASELINE_ORDER: [&str; 2] = ["socat", "kernel"];

impl System {
    /// A built-in system of the current build.
    pub const fn of(kind: SystemKind) -> System {
        System {
            kind,
            build: None,
            definition: None,
        }
    }

    /// The system of definition `name` (a name in `systems/` or a path).
    pub fn defined(name: &str) -> System {
        System {
            kind: SystemKind::Defined,
            build: None,
            definition: Some(name.to_owned()),
        }
    }

    /// True for the system of definition `name`.
    pub fn is_defined(&self, name: &str) -> bool {
        self.definition.as_deref() == Some(name)
    }

    /// Report order: by kind (defined systems before `direct`), the baselines socat and kernel
    /// first among definitions, then by name and build (the current build first).
    pub fn order_key(&self) -> (usize, usize, Option<&str>, Option<&str>) {
        let definition = self.definition.as_deref();
        (
            SystemKind::all()
                .iter()
                .position(|k| *k == self.kind)
                .unwrap_or(SystemKind::all().len() - 1),
            definition
                .and_then(|d| BASELINE_ORDER.iter().position(|b| *b == d))
                .unwrap_or(BASELINE_ORDER.len()),
            definition,
            self.build.as_deref(),
        )
    }
}

impl From<SystemKind> for System {
    fn from(kind: SystemKind) -> System {
        System::of(kind)
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.definition, &self.build) {
            (Some(name), _) => f.write_str(name),
            (None, Some(build)) => write!(f, "{}@{build}", self.kind),
            (None, None) => write!(f, "{}", self.kind),
        }
    }
}

impl std::str::FromStr for System {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, build) = match text.split_once('@') {
            Some((kind, build)) => (kind, Some(build)),
            None => (text, None),
        };
        let kind: SystemKind = match kind.parse() {
            Ok(kind) => kind,
            Err(_) if build.is_none() && is_definition_name(text) => {
                return Ok(System::defined(text));
            }
            Err(_) if is_definition_name(kind) => {
                return Err(format!(
                    "{text:?}: only this project's relay (relay/...) has builds; {kind} has none"
                ));
            }
            Err(e) => return Err(e),
        };
        if let Some(build) = build {
            if !kind.is_relay() {
                return Err(format!(
                    "{text:?}: only this project's relay (relay/...) has builds; {kind} has none"
                ));
            }
            if !is_plain_name(build) {
                return Err(format!(
                    "{text:?}: a build name uses only letters, digits, '-' and '_'"
                ));
            }
        }
        Ok(System {
            kind,
            build: build.map(str::to_owned),
            definition: None,
        })
    }
}

/// A definition's name (`socat`, `my-relay`) or path (`./my/relay.toml`).
fn is_definition_name(text: &str) -> bool {
    is_plain_name(text) || (text.ends_with(".toml") && !text.contains(char::is_whitespace))
}

impl Serialize for System {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for System {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// True for non-empty names of letters, digits, `-` and `_`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A named relay build for same-run A/B (`[builds.NAME]`): another relay binary and/or extra
/// `relay run` arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayBuild {
    /// The relay binary; `labctl run --build NAME=PATH` overrides it. `None` = the current build.
    #[serde(default)]
    pub relay: Option<PathBuf>,
    /// Extra arguments of `relay run` (e.g. `["--handicap-ns", "400"]`, the gate's canary).
    #[serde(default)]
    pub args: Vec<String>,
}

/// Whether the load generator gets CPUs of its own (see `crate::placement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IsolationMode {
    /// Sender and sink on their own CPU(s), the sinks at real-time priority, the system under
    /// test on the others, receive work steered to the side it belongs to; without it when the
    /// machine cannot (one core, no real-time permission), said in results.json and the report.
    #[default]
    Auto,
    /// Everything shares every CPU (the pre-isolation behaviour).
    Off,
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

/// Zero-loss throughput search: a geometric bisection on the aggregate rate for the highest rate
/// whose loss stays at or under the scenario's `loss_threshold`, until the bracket is narrower than
/// `resolution` (see `sweep::zero_loss`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroLossSearch {
    /// Lowest aggregate rate tried (packets per second over all streams).
    pub min_pps: f64,
    /// Highest aggregate rate tried (probed first).
    pub max_pps: f64,
    /// Relative width of the final bracket: the search stops once the highest lossless rate
    /// and the lowest lossy one are within this fraction (0.05 = 5 %).
    #[serde(default = "default_resolution")]
    pub resolution: f64,
    /// Duration of each probe in seconds (defaults to the scenario's `duration_s`).
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// A probe whose p99 latency exceeds this many milliseconds fails like a lossy one: a
    /// system with deep receive buffers (the relay's ring holds 16384 frames) absorbs an
    /// overload for a whole short probe and delivers it afterwards, without loss. None: loss
    /// alone decides.
    #[serde(default)]
    pub max_p99_ms: Option<f64>,
}

impl ZeroLossSearch {
    fn validate(&self) -> Result<(), String> {
        let finite = [self.min_pps, self.max_pps, self.resolution]
            .iter()
            .all(|v| v.is_finite());
        if !(finite
            && self.min_pps > 0.0
            && self.max_pps > self.min_pps
            && self.max_pps <= MAX_TOTAL_PPS)
        {
            return Err(format!(
                "field `zero_loss`: need 0 < min_pps < max_pps <= {MAX_TOTAL_PPS}"
            ));
        }
        if !(0.005..=1.0).contains(&self.resolution) {
            return Err(format!(
                "field `zero_loss.resolution`: {} must be a fraction in [0.005, 1], e.g. 0.05",
                self.resolution
            ));
        }
        if let Some(d) = self.duration_s
            && !(d.is_finite() && d > 0.0 && d <= 600.0)
        {
            return Err(format!(
                "field `zero_loss.duration_s`: {d} is out of range (0, 600] seconds"
            ));
        }
        if let Some(ms) = self.max_p99_ms
            && !(ms.is_finite() && ms > 0.0 && ms <= 60_000.0)
        {
            return Err(format!(
                "field `zero_loss.max_p99_ms`: {ms} is out of range (0, 60000] milliseconds"
            ));
        }
        Ok(())
    }

    /// Probes the search needs at most: the two ends, then bisection steps until the bracket
    /// is within `resolution`.
    pub fn max_probes(&self) -> u32 {
        let span = (self.max_pps / self.min_pps).ln();
        let step = (1.0 + self.resolution).ln();
        let steps = (span / step).log2().ceil().max(0.0);
        2 + steps as u32
    }
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
    /// Largest allowed drop of delivered %, in percentage points.
    #[serde(default = "default_delivered_drop")]
    pub delivered_drop_pct: f64,
    /// The relative worsening (per cent) of a primary metric (zero-loss rate, CPU per packet)
    /// that the gate must catch.
    #[serde(default = "default_regression_pct")]
    pub regression_pct: f64,
    /// Smallest worsening (per cent) reported as a regression even when it is statistically
    /// certain: real differences below it are shown, not failed.
    #[serde(default = "default_min_effect_pct")]
    pub min_effect_pct: f64,
    /// The chance (per cent) that unchanged code passes every relative check of one comparison
    /// together: with m checks each interval is at 1 - (1 - this)/m (Bonferroni), so more points
    /// and metrics do not raise the false-alarm rate.
    #[serde(default = "default_family_confidence_pct")]
    pub family_confidence_pct: f64,
}

impl Default for CompareTolerances {
    fn default() -> Self {
        CompareTolerances {
            delivered_drop_pct: default_delivered_drop(),
            regression_pct: default_regression_pct(),
            min_effect_pct: default_min_effect_pct(),
            family_confidence_pct: default_family_confidence_pct(),
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
    /// Systems under test (`relay/pool`, `kernel`, ..., or a relay build `relay/pool@NAME`).
    pub systems: Vec<System>,
    /// Input stream counts (required unless every `[[groups]]` entry sets its own).
    #[serde(default)]
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
    /// CPU isolation of the load generator from the system under test.
    #[serde(default)]
    pub isolation: IsolationMode,
    /// A point whose sender reached less than this fraction of the asked rate is
    /// `generator_bound`: measured, but no verdict about the asked load.
    #[serde(default = "default_generator_min_fraction")]
    pub generator_min_fraction: f64,
    /// Time the last rules of every point for the group join delay (about 4 s per point).
    #[serde(default = "default_true")]
    pub join_delay: bool,
    /// Named relay builds for same-run A/B (`relay/pool@NAME`).
    #[serde(default)]
    pub builds: BTreeMap<String, RelayBuild>,
    /// Optional zero-loss throughput search at every point.
    #[serde(default)]
    pub zero_loss: Option<ZeroLossSearch>,
    /// Optional membership capacity probe.
    #[serde(default)]
    pub capacity: Option<CapacityProbe>,
    /// Regression-gate tolerances.
    #[serde(default)]
    pub compare: CompareTolerances,
    /// Egress links that get a counting sink (`loadgen sink`: sequence numbers, duplicates,
    /// order, latency), from link 0; the links beyond are counted by their sink-side
    /// interface's rx_packets only (what the system put on the link), which costs the sink host
    /// a fraction of a socket's receive work, so high fan-out is not bounded by the lab's own
    /// sinks. Unset: every link has a sink.
    #[serde(default)]
    pub counting_sinks: Option<u32>,
    /// Run this project's relay with `--timing` and record its per-stage time at every point
    /// (the report draws where the time goes). Timing costs the relay some speed: keep it off
    /// where throughput is judged against other systems.
    #[serde(default)]
    pub timing: bool,
    /// Blocks of points with their own axes and search (`[[groups]]`; none: one block, the
    /// top-level axes).
    #[serde(default)]
    pub groups: Vec<PointGroup>,
    /// Ratios or levels the run is judged against in the report (`[[goals]]`).
    #[serde(default)]
    pub goals: Vec<Goal>,
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
fn default_resolution() -> f64 {
    0.05
}
fn default_delivered_drop() -> f64 {
    1.0
}
fn default_regression_pct() -> f64 {
    10.0
}
fn default_min_effect_pct() -> f64 {
    5.0
}
fn default_family_confidence_pct() -> f64 {
    95.0
}
fn default_generator_min_fraction() -> f64 {
    0.99
}
fn default_true() -> bool {
    true
}

/// Name of the implied variant when a scenario lists none.
pub const DEFAULT_VARIANT: &str = "default";

/// One measurement of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub system: System,
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
            system: self.system.clone(),
            streams: self.streams,
            fanout: self.fanout,
            variant: self.variant.clone(),
            rate_pps: self.rate_pps,
            size: self.size,
        }
    }

    /// Whether `other` is another system's turn at the same point of the same pass (every
    /// field but the system equal): the points a pair compares, measured back to back.
    pub fn same_turn(&self, other: &Point) -> bool {
        self.streams == other.streams
            && self.fanout == other.fanout
            && self.variant == other.variant
            && self.rate_pps == other.rate_pps
            && self.size == other.size
            && self.repeat == other.repeat
    }

    /// Packets offered per second over all streams.
    pub fn total_pps(&self) -> f64 {
        self.rate_pps * f64::from(self.streams)
    }
}

/// A point minus its repeat index: the unit of aggregation and comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointKey {
    pub system: System,
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
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        /// Line of the field the message names (1 when it cannot be found).
        line: usize,
        message: String,
    },
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
                line: crate::toml_location::field_line(text, &message).unwrap_or(1),
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
        let candidates = crate::shipped::dirs(SCENARIO_DIR)
            .into_iter()
            .map(|dir| dir.join(format!("{name_or_path}.toml")))
            .collect::<Vec<_>>();
        if let Some(found) = candidates.iter().find(|p| p.is_file()) {
            return Ok(found.clone());
        }
        let known = crate::shipped::toml_names(SCENARIO_DIR);
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
                known.join(", ")
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
    /// `repeats` times. Repeats are interleaved: the whole sweep is measured once, then again,
    /// and within each pass the systems take turns at every point (in reverse order on odd
    /// passes), so that drift on a shared machine hits every system alike. With `[[groups]]`,
    /// each pass measures every group in turn. The `direct` system has no relay and no copies:
    /// it is measured at every fan-out anyway, as the same-run ceiling.
    pub fn points(&self) -> Vec<Point> {
        let views = self.views();
        (0..self.repeats)
            .flat_map(|repeat| views.iter().flat_map(move |v| v.points_of_pass(repeat)))
            .collect()
    }

    /// The systems in the order they take their turn at a point of pass `repeat`: as listed
    /// on even passes, reversed on odd ones (A B, B A, ...), so that neither is always first
    /// after a topology is built and drift within a point hits both sides alike.
    fn systems_in_turn(&self, repeat: u32) -> Vec<&System> {
        let mut systems: Vec<&System> = self.systems.iter().collect();
        if repeat % 2 == 1 {
            systems.reverse();
        }
        systems
    }

    /// The build a system names, if any (`relay/pool@base` -> `[builds.base]`).
    pub fn build_of(&self, system: &System) -> Option<&RelayBuild> {
        system.build.as_ref().and_then(|b| self.builds.get(b))
    }

    /// Rough wall-clock estimate of the sweep in seconds (setup, join delay, traffic and the
    /// zero-loss probes per point, and the isolated-ceiling calibration).
    pub fn estimated_seconds(&self) -> f64 {
        let ceiling = if self.isolation == IsolationMode::Auto {
            15.0 * self.sizes().len() as f64
        } else {
            0.0
        };
        let per_pass: f64 = self.views().iter().map(Scenario::pass_seconds).sum();
        ceiling + f64::from(self.repeats) * per_pass
    }

    /// Seconds of one pass of a plain scenario (no groups).
    fn pass_seconds(&self) -> f64 {
        const SETUP_S: f64 = 2.0;
        const JOIN_DELAY_S: f64 = 3.0;
        const PROBE_OVERHEAD_S: f64 = 1.0;
        let probes = self.zero_loss.as_ref().map_or(0.0, |z| {
            f64::from(z.max_probes()) * (z.duration_s.unwrap_or(self.duration_s) + PROBE_OVERHEAD_S)
        });
        let join = if self.join_delay { JOIN_DELAY_S } else { 0.0 };
        self.points_of_pass(0).len() as f64 * (SETUP_S + join + self.duration_s + 1.0 + probes)
    }

    /// Every payload size of the sweep (all groups), ascending, once each.
    pub fn sizes(&self) -> Vec<u32> {
        let mut sizes: Vec<u32> = self.views().iter().flat_map(|v| v.size.clone()).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// The largest stream count of the sweep (all groups).
    pub fn most_streams(&self) -> u32 {
        self.views()
            .iter()
            .flat_map(|v| v.streams.clone())
            .max()
            .unwrap_or(1)
    }

    fn validate(&self) -> Result<(), String> {
        if !is_plain_name(&self.name) {
            return Err(format!(
                "field `name`: {:?} must be non-empty and use only letters, digits, '-' and '_'",
                self.name
            ));
        }
        self.validate_numbers()?;
        self.validate_sysctls()?;
        self.validate_builds()?;
        self.validate_definitions()?;
        if let Some(c) = &self.capacity
            && (c.max_groups == 0 || c.max_groups > 65_000)
        {
            return Err(format!(
                "field `capacity.max_groups`: {} is out of range 1..=65000",
                c.max_groups
            ));
        }
        if self.counting_sinks == Some(0) {
            return Err(
                "field `counting_sinks`: 0: at least one link needs a counting sink (latency, \
                 duplicates, order)"
                    .to_owned(),
            );
        }
        if self.groups.is_empty() {
            self.validate_point_axes()?;
        } else {
            self.validate_groups()?;
        }
        self.validate_goals()
    }

    /// What a plain scenario (or one group's view) needs: its axes, duration and search.
    fn validate_point_axes(&self) -> Result<(), String> {
        self.validate_axes()?;
        if !(self.duration_s.is_finite() && self.duration_s > 0.0 && self.duration_s <= 600.0) {
            return Err(format!(
                "field `duration_s`: {} is out of range (0, 600] seconds",
                self.duration_s
            ));
        }
        self.zero_loss
            .as_ref()
            .map_or(Ok(()), ZeroLossSearch::validate)
    }

    /// The lists of the sweep's axes: non-empty and in range.
    fn validate_axes(&self) -> Result<(), String> {
        fn non_empty<T>(field: &str, v: &[T]) -> Result<(), String> {
            if v.is_empty() {
                Err(format!(
                    "field `{field}`: list is empty; give at least one value"
                ))
            } else {
                Ok(())
            }
        }
        non_empty("systems", &self.systems)?;
        non_empty("streams", &self.streams)?;
        non_empty("fanout", &self.fanout)?;
        non_empty("rate_pps", &self.rate_pps)?;
        non_empty("size", &self.size)?;
        if let Some(s) = self.streams.iter().find(|&&s| s == 0 || s > 65_000) {
            return Err(format!("field `streams`: {s} is out of range 1..=65000"));
        }
        let max_fanout = u32::from(crate::topology::MAX_FANOUT);
        if let Some(f) = self.fanout.iter().find(|&&f| f == 0 || f > max_fanout) {
            return Err(format!(
                "field `fanout`: {f} is out of range 1..={max_fanout} (egress links of the fan-out topology)"
            ));
        }
        if let Some(r) = self.rate_pps.iter().find(|&&r| !(r.is_finite() && r > 0.0)) {
            return Err(format!("field `rate_pps`: {r} must be a positive number"));
        }
        let most_streams = self.streams.iter().copied().max().unwrap_or(1);
        if let Some(r) = self
            .rate_pps
            .iter()
            .find(|&&r| r * f64::from(most_streams) > MAX_TOTAL_PPS)
        {
            return Err(format!(
                "field `rate_pps`: {r} pps per stream x {most_streams} streams is above {MAX_TOTAL_PPS} pps in all"
            ));
        }
        if let Some(s) = self
            .size
            .iter()
            .find(|&&s| !(64..=MAX_PAYLOAD).contains(&s))
        {
            return Err(format!(
                "field `size`: {s} is out of range 64..={MAX_PAYLOAD} bytes (a 1500-byte MTU minus IPv4 and UDP headers)"
            ));
        }
        Ok(())
    }

    /// Repeats and fractions: finite and in range (durations: `validate_point_axes`).
    fn validate_numbers(&self) -> Result<(), String> {
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
        if !(self.generator_min_fraction > 0.0 && self.generator_min_fraction <= 1.0) {
            return Err(format!(
                "field `generator_min_fraction`: {} must be a fraction in (0, 1], e.g. 0.99",
                self.generator_min_fraction
            ));
        }
        let c = &self.compare;
        for (field, value, max) in [
            ("compare.delivered_drop_pct", c.delivered_drop_pct, 100.0),
            ("compare.regression_pct", c.regression_pct, 100.0),
            ("compare.min_effect_pct", c.min_effect_pct, 100.0),
        ] {
            if !(value.is_finite() && value >= 0.0 && value <= max) {
                return Err(format!(
                    "field `{field}`: {value} must be a number in [0, {max}]"
                ));
            }
        }
        if !(c.family_confidence_pct >= 50.0 && c.family_confidence_pct < 100.0) {
            return Err(format!(
                "field `compare.family_confidence_pct`: {} must be a percentage in [50, 100), e.g. 95",
                c.family_confidence_pct
            ));
        }
        Ok(())
    }

    fn validate_sysctls(&self) -> Result<(), String> {
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
        Ok(())
    }

    /// Every defined system's file exists and is a valid definition whose sysctls are
    /// per-namespace (a definition must not change the host).
    fn validate_definitions(&self) -> Result<(), String> {
        for name in self.systems.iter().filter_map(|s| s.definition.as_deref()) {
            let definition = crate::definition::Definition::find(name)
                .map_err(|e| format!("field `systems`: {e}"))?;
            if let Some(key) = definition
                .sysctls()
                .keys()
                .find(|k| !is_namespaced_sysctl(k))
            {
                return Err(format!(
                    "field `systems`: {}: system {name}: field `sysctls`: {key:?} is not a \
                     per-namespace sysctl the lab may set (allowed: net.ipv4.*, net.ipv6.*, \
                     net.core.optmem_max, net.core.somaxconn)",
                    definition.path.display()
                ));
            }
        }
        Ok(())
    }

    /// Every `@build` a system names is defined, and every build name is plain.
    fn validate_builds(&self) -> Result<(), String> {
        if let Some(name) = self.builds.keys().find(|n| !is_plain_name(n)) {
            return Err(format!(
                "field `builds`: {name:?} must use only letters, digits, '-' and '_'"
            ));
        }
        for system in &self.systems {
            if let Some(build) = &system.build
                && !self.builds.contains_key(build)
            {
                return Err(format!(
                    "field `systems`: {system} names build {build:?}, which has no [builds.{build}] table"
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = self.systems.iter().find(|s| !seen.insert(*s)) {
            return Err(format!("field `systems`: {dup} is listed twice"));
        }
        Ok(())
    }
}

/// Largest aggregate rate a scenario may ask for (packets per second over all streams).
pub const MAX_TOTAL_PPS: f64 = 10_000_000.0;
/// Largest UDP payload on the lab's 1500-byte MTU links.
pub const MAX_PAYLOAD: u32 = 1472;

/// Sysctls that are per network namespace and therefore safe to set in a lab namespace.
/// `net.core.rmem_max` and friends are global and must never be written (docs/architecture.md,
/// safety rule 6).
pub fn is_namespaced_sysctl(key: &str) -> bool {
    key.starts_with("net.ipv4.")
        || key.starts_with("net.ipv6.")
        || key == "net.core.optmem_max"
        || key == "net.core.somaxconn"
}

fn parse_error(text: &str, path: &Path, err: &toml::de::Error) -> ScenarioError {
    let at = crate::toml_location::locate(text, err);
    ScenarioError::Parse {
        path: path.to_path_buf(),
        line: at.line,
        column: at.column,
        field: at.field,
        message: at.message,
    }
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
        assert_eq!(
            seen,
            [
                "ab",
                "ci",
                "enobufs",
                "fanout",
                "gate-power",
                "perf",
                "quick",
                "scale",
                "scale-overload",
                "send"
            ]
        );
    }

    #[test]
    fn quick_is_the_headline_and_ci_is_short() {
        let quick = Scenario::load(&shipped_dir().join("quick.toml")).unwrap();
        for &s in SystemKind::all()
            .iter()
            .filter(|k| **k != SystemKind::Defined)
        {
            assert!(quick.systems.contains(&System::of(s)), "quick lacks {s}");
        }
        for name in ["socat", "kernel"] {
            assert!(
                quick.systems.contains(&System::defined(name)),
                "quick lacks {name}"
            );
        }
        // The estimate errs long (3 s of set-up per point; a chain point at 2 s took 2.8 s in
        // all): 735 s estimated for ci, 7.5 minutes measured. CI's budget is 30 minutes.
        let ci = Scenario::load(&shipped_dir().join("ci.toml")).unwrap();
        assert!(
            ci.estimated_seconds() < 800.0,
            "ci estimate {}s",
            ci.estimated_seconds()
        );
    }

    #[test]
    fn out_of_range_values_name_file_line_and_field() {
        let text = "name = \"t\"\nsystems = [\"relay/pool\"]\nstreams = [10]\n\n[zero_loss]\nmin_pps = 100.0\nmax_pps = 1000.0\nduration_s = -1.0\n";
        let err = Scenario::parse(text, Path::new("t.toml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.toml:8: field `zero_loss.duration_s`: -1 is out of range (0, 600] seconds"
        );
        let text = "name = \"t\"\nsystems = [\"relay/pool\"]\n\nstreams = [0]\n";
        let err = Scenario::parse(text, Path::new("t.toml")).unwrap_err();
        assert!(
            err.to_string().starts_with("t.toml:4: field `streams`"),
            "{err}"
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
    fn system_names_are_unchanged_and_round_trip() {
        // The names results.json and scenario files carry: a fixed contract, spelled out here
        // only to check it.
        let expected = ["relay/pool", "relay/single", "relay/single-8mb", "direct"];
        let names: Vec<String> = SystemKind::all()
            .iter()
            .filter(|k| **k != SystemKind::Defined)
            .map(|k| k.to_string())
            .collect();
        assert_eq!(names, expected);
        // socat and kernel are shipped definitions now, under the same names.
        for name in ["socat", "kernel", "./my/relay.toml"] {
            let system: System = name.parse().unwrap();
            assert_eq!(system, System::defined(name));
            assert_eq!(system.to_string(), name);
            let json = serde_json::to_string(&system).unwrap();
            assert_eq!(serde_json::from_str::<System>(&json).unwrap(), system);
        }
        for kind in SystemKind::all()
            .iter()
            .copied()
            .filter(|k| *k != SystemKind::Defined)
        {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<SystemKind>(&json).unwrap(), kind);
            assert_eq!(kind.to_string().parse::<SystemKind>(), Ok(kind));
            let system = System::of(kind);
            let json = serde_json::to_string(&system).unwrap();
            assert_eq!(serde_json::from_str::<System>(&json).unwrap(), system);
        }
        let built: System = "relay/pool@base".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&built).unwrap(),
            "\"relay/pool@base\""
        );
        let err = "ncat".parse::<SystemKind>().unwrap_err();
        assert!(err.contains("use one of relay/pool, relay/single"), "{err}");
        assert!(serde_json::from_str::<SystemKind>("\"ncat\"").is_err());
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
        let per_pass = 3 * 2 * 3 * 2 * 2 * 2;
        assert_eq!(points.len(), per_pass * 3);
        // Systems take turns at every point, in reverse order on odd passes; repeats come as
        // whole passes, numbered from 0.
        let turns = |from: usize| -> Vec<String> {
            points[from..from + 3]
                .iter()
                .map(|p| p.system.to_string())
                .collect()
        };
        assert_eq!(turns(0), ["relay/pool", "socat", "direct"]);
        assert_eq!(turns(per_pass), ["direct", "socat", "relay/pool"]);
        assert_eq!(turns(2 * per_pass), ["relay/pool", "socat", "direct"]);
        assert_eq!(points[0].streams, points[2].streams);
        assert_eq!(points[2].key(), points[per_pass].key());
        assert_eq!(
            [0, per_pass, 2 * per_pass].map(|i| points[i].repeat),
            [0, 1, 2]
        );
        assert!(points[..per_pass].iter().all(|p| p.repeat == 0));
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
    #[test]
    fn builds_are_named_and_checked() {
        let text = r#"
            name = "ab"
            systems = ["relay/pool", "relay/pool@base", "relay/pool@canary"]
            streams = [1]
            [builds.base]
            relay = "/opt/relay-base"
            [builds.canary]
            args = ["--handicap-ns", "400"]
        "#;
        let s = Scenario::parse(text, Path::new("ab.toml")).unwrap();
        let base: System = "relay/pool@base".parse().unwrap();
        assert_eq!(s.systems[1], base);
        assert_eq!(base.to_string(), "relay/pool@base");
        assert_eq!(
            s.build_of(&base).and_then(|b| b.relay.clone()),
            Some(PathBuf::from("/opt/relay-base"))
        );
        assert_eq!(s.build_of(&s.systems[2]).unwrap().args.len(), 2);
        assert!(s.build_of(&s.systems[0]).is_none());
        let json = serde_json::to_string(&s.systems).unwrap();
        assert_eq!(
            json,
            r#"["relay/pool","relay/pool@base","relay/pool@canary"]"#
        );

        let undefined = "name = \"x\"\nsystems = [\"relay/pool@nope\"]\nstreams = [1]\n";
        let msg = Scenario::parse(undefined, Path::new("u.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("[builds.nope]"), "{msg}");
        let kernel = "name = \"x\"\nsystems = [\"kernel@b\"]\nstreams = [1]\n";
        let msg = Scenario::parse(kernel, Path::new("k.toml"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("only this project's relay"), "{msg}");
    }

    #[test]
    fn numbers_out_of_range_are_refused_with_the_field() {
        let base = "name = \"x\"\nsystems = [\"kernel\"]\nstreams = [10]\n";
        for (extra, needle) in [
            ("rate_pps = [1e25]", "rate_pps"),
            ("rate_pps = [inf]", "rate_pps"),
            ("fanout = [100]", "fanout"),
            ("size = [4000]", "size"),
            ("duration_s = -1.0", "duration_s"),
            ("generator_min_fraction = 0.0", "generator_min_fraction"),
            ("[compare]\nregression_pct = nan", "compare.regression_pct"),
            (
                "[compare]\nfamily_confidence_pct = 100.0",
                "compare.family_confidence_pct",
            ),
            ("[zero_loss]\nmin_pps = 1.0\nmax_pps = inf", "zero_loss"),
            (
                "[zero_loss]\nmin_pps = 1.0\nmax_pps = 10.0\nduration_s = -1.0",
                "zero_loss.duration_s",
            ),
            (
                "[zero_loss]\nmin_pps = 1.0\nmax_pps = 10.0\nresolution = 0.0",
                "zero_loss.resolution",
            ),
        ] {
            let text = format!("{base}{extra}\n");
            let msg = Scenario::parse(&text, Path::new("n.toml"))
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string());
            assert!(msg.contains(needle), "{extra}: {msg:?}");
        }
    }

    #[test]
    fn zero_loss_probes_follow_the_resolution() {
        let z = ZeroLossSearch {
            min_pps: 1000.0,
            max_pps: 1000.0 * 1.05f64.powi(16),
            resolution: 0.05,
            duration_s: None,
            max_p99_ms: None,
        };
        // 16 steps of 5 % between the ends: 4 halvings, plus the two end probes.
        assert_eq!(z.max_probes(), 6);
    }

    #[test]
    fn isolation_defaults_to_auto() {
        let s = Scenario::parse(
            "name = \"d\"\nsystems = [\"direct\"]\nstreams = [1]\n",
            Path::new("d.toml"),
        )
        .unwrap();
        assert_eq!(s.isolation, IsolationMode::Auto);
        assert!((s.generator_min_fraction - 0.99).abs() < 1e-12);
        let off = Scenario::parse(
            "name = \"d\"\nsystems = [\"direct\"]\nstreams = [1]\nisolation = \"off\"\n",
            Path::new("d.toml"),
        )
        .unwrap();
        assert_eq!(off.isolation, IsolationMode::Off);
    }
}
