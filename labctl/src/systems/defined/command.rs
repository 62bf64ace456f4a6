//! Running a definition's commands in the relay namespace: rendered argv, the definition's
//! environment and working directory, the system's CPUs, a deadline for commands that must end.

use crate::binaries;
use crate::definition::Definition;
use crate::process::{ProcessPlacement, SpawnOptions, Spawned, spawn_in_netns};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// How commands of one started system run.
#[derive(Debug, Clone)]
pub struct Runner {
    pub netns: String,
    pub placement: ProcessPlacement,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// What a command that ran to its end left.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    /// stdout and stderr together.
    pub output: String,
}

impl Runner {
    /// Starts `argv` in the namespace, unbounded (a long-lived process).
    pub fn spawn(&self, argv: &[String]) -> Result<Spawned> {
        self.spawn_with(argv, SpawnOptions::default())
    }

    /// Runs `argv` to its end within `deadline`.
    pub fn run(&self, argv: &[String], deadline: Duration) -> Result<Ran> {
        let child = self.spawn_with(argv, SpawnOptions::with_deadline(deadline))?;
        let (status, out, err) = child.wait_output(deadline + Duration::from_secs(5))?;
        Ok(Ran {
            status,
            output: format!("{out}{err}"),
        })
    }

    fn spawn_with(&self, argv: &[String], opts: SpawnOptions) -> Result<Spawned> {
        let (program, args) = argv.split_first().context("empty command")?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd);
        spawn_in_netns(&self.netns, cmd, opts.placed(&self.placement))
    }
}

/// Renders command `field` of `def` and splits it into arguments.
pub fn render(def: &Definition, field: &str, values: impl Serialize) -> Result<Vec<String>> {
    def.templates
        .command(field, values)
        .map_err(|message| field_error(def, field, &message))
}

/// Renders text field `field` of `def`.
pub fn render_text(def: &Definition, field: &str, values: impl Serialize) -> Result<String> {
    def.templates
        .render(field, values)
        .map_err(|message| field_error(def, field, &message))
}

/// An error that names the definition's file, the system and the field.
pub fn field_error(def: &Definition, field: &str, message: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: system {}: field `{field}`: {message}",
        def.path.display(),
        def.name
    )
}

/// The path of `program` if it can be run: a path to an executable file, or a name found on
/// PATH (or in /usr/sbin, /sbin).
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = Path::new(program);
        return binaries::is_executable(path).then(|| path.to_path_buf());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|p| binaries::is_executable(p))
}

/// The last non-empty lines of a process's output, for error messages (at most 3 lines).
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join(" | ")
}

/// Fails with the command's output when it did not exit 0.
pub fn check(def: &Definition, field: &str, ran: &Ran) -> Result<()> {
    if ran.status.success() {
        return Ok(());
    }
    bail!(
        "{}: {field} exited with {}: {}",
        def.name,
        ran.status,
        tail(&ran.output)
    )
}
