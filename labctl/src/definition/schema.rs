//! The fields of a definition file (`systems/README.md` describes each) and their checks.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A field at fault and what is wrong with it.
pub type FieldError = (String, String);

/// The whole file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// One line for the report.
    #[serde(default)]
    pub description: String,
    /// Debian packages that provide the programs: a point is skipped, saying what to install,
    /// when a program is missing. Without packages a missing program fails the point.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Programs that must be on PATH (checked before a point builds anything).
    #[serde(default)]
    pub requires: Vec<String>,
    /// A command printing the version (its first non-empty line is recorded).
    pub version: Option<String>,
    /// Per-namespace sysctls set in the relay namespace before the system starts.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// Notes copied into every point's notes (e.g. how the system forwards).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Environment of every command (values are templates).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of every command (a template; default: the scratch directory).
    pub cwd: Option<String>,
    #[serde(default)]
    pub can: Capabilities,
    pub start: Option<Start>,
    pub ready: Option<Ready>,
    #[serde(default)]
    pub rules: Rules,
    #[serde(default)]
    pub stop: Stop,
}

/// What the system can do; points it cannot do are refused, not measured.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Outputs may use other groups and ports than the input. Without it outputs keep the
    /// input group and port (as kernel routing does).
    #[serde(default = "yes")]
    pub rename: bool,
    /// One rule may have several outputs.
    #[serde(default = "yes")]
    pub fanout: bool,
    /// Most outputs of one rule.
    #[serde(default = "max_outputs")]
    pub max_outputs: u32,
    /// The system joins its input groups (IGMP), so its capacity is read from the relay
    /// namespace's memberships. `false`: it forwards without joining (static routes, a network
    /// without snooping); every rule it installed counts as accepted and nothing waits for
    /// joins.
    #[serde(default = "yes")]
    pub joins: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            rename: true,
            fanout: true,
            max_outputs: max_outputs(),
            joins: true,
        }
    }
}

fn yes() -> bool {
    true
}

fn max_outputs() -> u32 {
    64
}

/// The program started once, before any rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    pub command: Option<String>,
    /// Start only once the rules' config file is written (for programs that read their
    /// configuration at start and cannot reload it).
    #[serde(default)]
    pub after_config: bool,
}

/// How to know the system is ready (after its start, and after the config when `after_config`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// A command that must exit 0 (retried until the deadline).
    pub command: Option<String>,
    /// A file or socket that must appear.
    pub path: Option<String>,
    #[serde(default = "ready_deadline")]
    pub deadline_s: f64,
}

fn ready_deadline() -> f64 {
    10.0
}

/// How often the per-rule commands run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Each {
    /// Once per rule (`outputs` lists the rule's outputs).
    #[default]
    Rule,
    /// Once per rule and output (`output` is that output).
    Output,
}

/// How rules are installed and removed.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub each: Each,
    /// A process that forwards the rule and lives as long as it (socat-like).
    pub spawn: Option<String>,
    /// Commands run in order to add a rule; each must exit 0.
    #[serde(default)]
    pub add: Vec<String>,
    /// Commands run in order to remove a rule.
    #[serde(default)]
    pub remove: Vec<String>,
    /// All rules at once: a config file rendered from a template.
    pub config: Option<Config>,
}

/// A config file holding the rules, rendered from a template and applied by a command.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where it is written (a template, e.g. `{{ scratch }}/relay.conf`).
    pub path: String,
    /// The template text.
    pub template: Option<String>,
    /// Or a template file, relative to the definition file.
    pub template_file: Option<String>,
    /// Run after each write (reload, or feed the file to a control tool). Without it the rules
    /// must all be known before the start (`start.after_config`).
    pub apply: Option<String>,
}

/// How the system is stopped: every process of the relay namespace gets `signal`, then SIGKILL
/// after `grace_s`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    #[serde(default = "term")]
    pub signal: String,
    #[serde(default = "grace")]
    pub grace_s: f64,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            signal: term(),
            grace_s: grace(),
        }
    }
}

fn term() -> String {
    "TERM".to_owned()
}

fn grace() -> f64 {
    3.0
}

/// Signals a definition may name.
pub const SIGNALS: [&str; 6] = ["TERM", "INT", "HUP", "QUIT", "USR1", "USR2"];

fn field(name: &str, message: impl Into<String>) -> FieldError {
    (name.to_owned(), message.into())
}

impl Settings {
    /// Checks what the types cannot: something to run, values in range, consistent choices.
    pub fn check(&self) -> Result<(), FieldError> {
        let start = self.start.as_ref().and_then(|s| s.command.as_ref());
        if start.is_none() && self.rules.spawn.is_none() {
            return Err(field(
                "start.command",
                "missing: a definition needs a start command, or rules.spawn for a process per rule",
            ));
        }
        let r = &self.rules;
        if r.spawn.is_none() && r.add.is_empty() && r.config.is_none() {
            return Err(field(
                "rules",
                "no way to install a rule: give rules.add, rules.spawn or rules.config",
            ));
        }
        if r.each == Each::Output && r.config.is_some() && r.spawn.is_none() && r.add.is_empty() {
            return Err(field(
                "rules.each",
                "\"output\" applies to rules.spawn and rules.add, which are missing",
            ));
        }
        self.check_config()?;
        self.check_numbers()?;
        if !SIGNALS.contains(&self.stop.signal.as_str()) {
            return Err(field(
                "stop.signal",
                format!(
                    "{:?} is not one of {}",
                    self.stop.signal,
                    SIGNALS.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn check_config(&self) -> Result<(), FieldError> {
        let after = self.start.as_ref().is_some_and(|s| s.after_config);
        let Some(c) = &self.rules.config else {
            if after {
                return Err(field(
                    "start.after_config",
                    "needs rules.config (the file the start reads)",
                ));
            }
            return Ok(());
        };
        if c.template.is_some() == c.template_file.is_some() {
            return Err(field(
                "rules.config",
                "give exactly one of template and template_file",
            ));
        }
        if c.apply.is_none() && !after {
            return Err(field(
                "rules.config.apply",
                "missing: give a command that applies the file, or start.after_config = true",
            ));
        }
        Ok(())
    }

    fn check_numbers(&self) -> Result<(), FieldError> {
        if let Some(r) = &self.ready {
            if r.command.is_none() && r.path.is_none() {
                return Err(field("ready", "give command and/or path"));
            }
            if !(r.deadline_s.is_finite() && r.deadline_s > 0.0 && r.deadline_s <= 600.0) {
                return Err(field(
                    "ready.deadline_s",
                    format!("{} is out of range (0, 600] seconds", r.deadline_s),
                ));
            }
        }
        let g = self.stop.grace_s;
        if !(g.is_finite() && (0.0..=60.0).contains(&g)) {
            return Err(field(
                "stop.grace_s",
                format!("{g} is out of range [0, 60] seconds"),
            ));
        }
        let m = self.can.max_outputs;
        if m == 0 || m > 1024 {
            return Err(field(
                "can.max_outputs",
                format!("{m} is out of range 1..=1024"),
            ));
        }
        Ok(())
    }

    /// Every template of the file as (field, source); a template file is read here.
    pub fn template_sources(&self, base: &Path) -> Result<Vec<(String, String)>, FieldError> {
        let mut out = Vec::new();
        let mut push = |name: &str, text: Option<&String>| {
            if let Some(t) = text {
                out.push((name.to_owned(), t.clone()));
            }
        };
        push("version", self.version.as_ref());
        push("cwd", self.cwd.as_ref());
        push(
            "start.command",
            self.start.as_ref().and_then(|s| s.command.as_ref()),
        );
        push(
            "ready.command",
            self.ready.as_ref().and_then(|r| r.command.as_ref()),
        );
        push(
            "ready.path",
            self.ready.as_ref().and_then(|r| r.path.as_ref()),
        );
        push("rules.spawn", self.rules.spawn.as_ref());
        for (key, value) in &self.env {
            out.push((format!("env.{key}"), value.clone()));
        }
        for (i, add) in self.rules.add.iter().enumerate() {
            out.push((format!("rules.add[{i}]"), add.clone()));
        }
        for (i, remove) in self.rules.remove.iter().enumerate() {
            out.push((format!("rules.remove[{i}]"), remove.clone()));
        }
        if let Some(c) = &self.rules.config {
            out.push(("rules.config.path".to_owned(), c.path.clone()));
            if let Some(apply) = &c.apply {
                out.push(("rules.config.apply".to_owned(), apply.clone()));
            }
            let text = match (&c.template, &c.template_file) {
                (Some(t), _) => t.clone(),
                (None, Some(file)) => std::fs::read_to_string(base.join(file)).map_err(|e| {
                    field(
                        "rules.config.template_file",
                        format!("cannot read {}: {e}", base.join(file).display()),
                    )
                })?,
                (None, None) => String::new(),
            };
            out.push(("rules.config.template".to_owned(), text));
        }
        Ok(out)
    }
}
