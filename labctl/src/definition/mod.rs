//! System definitions: a system under test described in a TOML file instead of in code.
//!
//! A definition says how to start a program in the relay namespace, how to install (and
//! remove) one forwarding rule or all of them at once, how to know it is ready, how to stop it,
//! how to read its version and what it can do. Every command and file is a template
//! ([`template`]): placeholders such as `{{ input.group }}` name what a rule and its hosts have,
//! and an unknown placeholder is an error when the file is loaded, not when a point runs.
//! `systems/README.md` is the user's reference; `systems/socat.toml` and `systems/kernel.toml`
//! are the shipped examples.
//!
//! Definitions are found by name (`socat` -> `systems/socat.toml`, in `./systems/` or the
//! workspace's `systems/`) or by path (anything with a `/` or ending in `.toml`).

pub mod schema;
pub mod template;

pub use schema::{Capabilities, Config, Each, Rules, Stop};

use crate::toml_location;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use template::{Scope, Templates};

/// Directory (relative to the workspace root) where the shipped definitions live.
pub const SYSTEM_DIR: &str = "systems";

/// A loaded, checked definition: its settings and its compiled templates.
#[derive(Debug)]
pub struct Definition {
    /// The name the scenario gives (`socat`, or a path as written).
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    pub settings: schema::Settings,
    pub templates: Templates,
}

/// Why a definition could not be loaded: always names the file and the system, and the field
/// when one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error(
        "no system definition named `{name}` (looked for {tried}); give a path to a .toml file or one of: {known}"
    )]
    NotFound {
        name: String,
        tried: String,
        known: String,
    },
    #[error("system {name}: cannot read {path}: {source}")]
    Read {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: system {name}: field `{field}`: {message}")]
    Invalid {
        name: String,
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
}

impl Definition {
    /// Finds and loads the definition a scenario names.
    pub fn find(name: &str) -> Result<Definition, DefinitionError> {
        let path = resolve(name)?;
        Definition::load(name, &path)
    }

    /// Reads, parses and checks a definition file; `name` is what the scenario calls it.
    pub fn load(name: &str, path: &Path) -> Result<Definition, DefinitionError> {
        let text = std::fs::read_to_string(path).map_err(|source| DefinitionError::Read {
            name: name.to_owned(),
            path: path.to_path_buf(),
            source,
        })?;
        Definition::parse(name, path, &text)
    }

    /// Parses and checks definition text; `path` locates template files and names errors.
    pub fn parse(name: &str, path: &Path, text: &str) -> Result<Definition, DefinitionError> {
        let invalid = |field: String, message: String| DefinitionError::Invalid {
            name: name.to_owned(),
            path: path.to_path_buf(),
            line: field_line(text, &field),
            field,
            message,
        };
        let settings: schema::Settings = toml::from_str(text).map_err(|err| {
            let at = toml_location::locate(text, &err);
            DefinitionError::Invalid {
                name: name.to_owned(),
                path: path.to_path_buf(),
                line: at.line,
                field: at.field,
                message: at.message,
            }
        })?;
        settings
            .check()
            .map_err(|(field, message)| invalid(field.to_owned(), message))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let sources = settings
            .template_sources(base)
            .map_err(|(field, message)| invalid(field, message))?;
        let templates = Templates::compile(sources, settings.rules.each == Each::Output)
            .map_err(|(field, message)| invalid(field, message))?;
        Ok(Definition {
            name: name.to_owned(),
            path: path.to_path_buf(),
            settings,
            templates,
        })
    }

    /// What the system can do.
    pub fn can(&self) -> &Capabilities {
        &self.settings.can
    }

    /// Why the system cannot run a point of `fanout` outputs, if it cannot.
    pub fn refusal(&self, fanout: u32) -> Option<String> {
        let can = &self.settings.can;
        let file = self.path.display();
        if fanout > 1 && !can.fanout {
            return Some(format!(
                "{} cannot fan out ({file}: can.fanout = false); point with fan-out {fanout} not measured",
                self.name
            ));
        }
        if fanout > can.max_outputs {
            return Some(format!(
                "{} takes at most {} outputs per rule ({file}: can.max_outputs); point with fan-out {fanout} not measured",
                self.name, can.max_outputs
            ));
        }
        None
    }

    /// Per-namespace sysctls the system needs in the relay namespace.
    pub fn sysctls(&self) -> &BTreeMap<String, String> {
        &self.settings.sysctls
    }

    /// Grace between the stop signal and SIGKILL.
    pub fn stop_grace(&self) -> Duration {
        Duration::from_secs_f64(self.settings.stop.grace_s)
    }

    /// Deadline of the ready check.
    pub fn ready_deadline(&self) -> Duration {
        Duration::from_secs_f64(self.settings.ready.as_ref().map_or(10.0, |r| r.deadline_s))
    }

    /// True when the definition has a template for `field` (e.g. `start.command`).
    pub fn has(&self, field: &str) -> bool {
        self.templates.has(field)
    }

    /// The scope a field's template is rendered in.
    pub fn scope_of(field: &str) -> Option<Scope> {
        template::scope_of(field)
    }
}

/// The line of `field` (`rules.add[0]` is looked up as `rules.add`); 1 when not found.
fn field_line(text: &str, field: &str) -> usize {
    let bare = field.split('[').next().unwrap_or(field);
    toml_location::field_line(text, &format!("field `{bare}`: x")).unwrap_or(1)
}

/// Path of the definition a scenario names: a path as given, or `systems/NAME.toml`.
pub fn resolve(name: &str) -> Result<PathBuf, DefinitionError> {
    if name.ends_with(".toml") || name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let candidates: Vec<PathBuf> = crate::shipped::dirs(SYSTEM_DIR)
        .into_iter()
        .map(|dir| dir.join(format!("{name}.toml")))
        .collect();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    Err(DefinitionError::NotFound {
        name: name.to_owned(),
        tried: candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        known: shipped_names().join(", "),
    })
}

/// Names of the definitions found in the system directories (sorted).
pub fn shipped_names() -> Vec<String> {
    crate::shipped::toml_names(SYSTEM_DIR)
}

#[cfg(test)]
mod tests;
