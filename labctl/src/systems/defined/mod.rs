//! Systems described by definition files ([`crate::definition`]): socat, kernel routing and any
//! other relay, run through one mechanism.
//!
//! [`start`] checks the programs, makes a scratch directory, runs the start command in the
//! relay namespace and waits for the ready check; [`Installer`] installs rules per rule
//! (`rules.spawn`, `rules.add`) and/or all at once (`rules.config` + `rules.apply`) and removes
//! them (`rules.remove`, or by stopping a rule's processes).
//!
//! Processes are tracked through the relay namespace: every process whose network namespace
//! is the relay namespace belongs to the system, whatever forked or daemonized it. They are
//! sampled (CPU, RSS, fds) and stopped (the definition's signal, then SIGKILL after its grace)
//! as a whole; the topology's teardown stops anything left.

mod command;
mod scope;

use super::{
    Installer as SystemInstaller, Layout, RuleAdd, Running, StartError, capacity_from,
    capacity_from_joins, errno_from_text,
};
use crate::definition::{Definition, Each, template::Rule};
use crate::process::Spawned;
use crate::process::loadgen::ScratchDir;
use crate::results::Capacity;
use crate::scenario::SystemKind;
use anyhow::{Context, Result, bail};
use command::Runner;
use scope::Values;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Deadline of one `rules.add` / `rules.remove` command.
const RULE_COMMAND_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline of `rules.config.apply` (a batch of every rule).
const APPLY_DEADLINE: Duration = Duration::from_secs(120);
/// Deadline of the version command and of one ready-check command.
const SHORT_DEADLINE: Duration = Duration::from_secs(5);
/// How long memberships may take to appear in the namespace's igmp table.
const JOIN_DEADLINE: Duration = Duration::from_secs(30);
/// Stop waiting for joins when their count has not grown for this long.
const JOIN_STALL: Duration = Duration::from_secs(3);

/// Starts the system of `def` on `layout`, with no rules yet.
pub fn start(def: &Arc<Definition>, layout: &Layout) -> Result<Running, StartError> {
    check_requirements(def)?;
    let scratch = ScratchDir::new("system")?;
    let values = Values::new(layout, scratch.dir())?;
    let runner = runner(def, &values, layout)?;
    check_programs(def, &values, layout)?;
    let mut notes = def.settings.notes.clone();
    if let Some(version) = version(def, &runner, &values) {
        notes.push(format!("{} version: {version}", def.name));
    }
    let mut installer = Installer {
        def: def.clone(),
        values,
        runner,
        start_pid: None,
        started: false,
        installed: BTreeSet::new(),
        per_rule: BTreeMap::new(),
        failures: Vec::new(),
    };
    let mut children = Vec::new();
    let after_config = def.settings.start.as_ref().is_some_and(|s| s.after_config);
    if !after_config {
        installer.start(&mut children)?;
    }
    Ok(Running {
        kind: SystemKind::Defined,
        children,
        installer: SystemInstaller::Defined(Box::new(installer)),
        notes,
        _scratch: Some(scratch),
    })
}

/// A missing required program skips the point (saying what to install) when the definition
/// names packages, and fails it otherwise (the user's own program is not there).
pub(super) fn check_requirements(def: &Definition) -> Result<(), StartError> {
    for program in &def.settings.requires {
        if command::find_program(program).is_none() {
            return Err(missing(def, program, "requires"));
        }
    }
    Ok(())
}

fn missing(def: &Definition, program: &str, field: &str) -> StartError {
    let message = format!(
        "{}: system {}: field `{field}`: program `{program}` not found",
        def.path.display(),
        def.name
    );
    if def.settings.packages.is_empty() {
        StartError::Failed(anyhow::anyhow!(message))
    } else {
        StartError::Skip(format!(
            "{message} (apt-get install {})",
            def.settings.packages.join(" ")
        ))
    }
}

/// The first argument of every command, rendered for this start (rule 0 for rule commands),
/// must be a program that exists.
fn check_programs(def: &Definition, values: &Values, layout: &Layout) -> Result<(), StartError> {
    let rule = values.rule(layout, 0);
    let output = rule
        .outputs
        .first()
        .filter(|_| def.settings.rules.each == Each::Output);
    for field in def.templates.fields() {
        use crate::definition::template::Scope;
        let argv = match Definition::scope_of(field) {
            _ if matches!(field.as_str(), "cwd" | "ready.path" | "rules.config.path")
                || field.starts_with("env.") =>
            {
                continue;
            }
            Some(Scope::Host) => command::render(def, field, values.host_scope())?,
            Some(Scope::Rule) => command::render(def, field, values.rule_scope(&rule, output))?,
            Some(Scope::Apply) => command::render(def, field, values.apply_scope("config"))?,
            Some(Scope::Config) | None => continue,
        };
        if command::find_program(&argv[0]).is_none() {
            return Err(missing(def, &argv[0], field));
        }
    }
    Ok(())
}

fn runner(def: &Definition, values: &Values, layout: &Layout) -> Result<Runner> {
    let scope = values.host_scope();
    let mut env = Vec::new();
    for key in def.settings.env.keys() {
        let field = format!("env.{key}");
        env.push((key.clone(), command::render_text(def, &field, &scope)?));
    }
    let cwd = match def.has("cwd") {
        true => command::render_text(def, "cwd", &scope)?.into(),
        false => values.host.scratch.clone().into(),
    };
    Ok(Runner {
        netns: values.host.netns.clone(),
        placement: layout.system_placement.clone(),
        env,
        cwd,
    })
}

/// The first line of the version command's output that has a digit.
fn version(def: &Definition, runner: &Runner, values: &Values) -> Option<String> {
    if !def.has("version") {
        return None;
    }
    let argv = command::render(def, "version", values.host_scope()).ok()?;
    let ran = runner.run(&argv, SHORT_DEADLINE).ok()?;
    ran.output
        .lines()
        .map(str::trim)
        .find(|l| l.chars().any(|c| c.is_ascii_digit()))
        .map(|l| l.chars().take(200).collect())
}

/// Installs and removes the rules of a defined system.
#[derive(Debug)]
pub(crate) struct Installer {
    def: Arc<Definition>,
    values: Values,
    runner: Runner,
    /// The start command's process, once started.
    start_pid: Option<u32>,
    started: bool,
    installed: BTreeSet<u32>,
    /// PIDs of the processes `rules.spawn` started for each rule.
    per_rule: BTreeMap<u32, Vec<u32>>,
    /// Output of rule commands that failed or printed an errno text.
    failures: Vec<String>,
}

impl Installer {
    /// Runs the start command (if any) and waits for the ready check.
    fn start(&mut self, children: &mut Vec<Spawned>) -> Result<()> {
        self.started = true;
        if !self.def.has("start.command") {
            return Ok(());
        }
        let argv = command::render(&self.def, "start.command", self.values.host_scope())?;
        let child = self
            .runner
            .spawn(&argv)
            .with_context(|| format!("starting {}", self.def.name))?;
        self.start_pid = Some(child.pid());
        children.push(child);
        self.wait_ready(children.last())
    }

    /// Waits until the ready check passes, the start process fails, or the deadline.
    fn wait_ready(&self, start: Option<&Spawned>) -> Result<()> {
        let def = &self.def;
        let Some(ready) = &def.settings.ready else {
            std::thread::sleep(Duration::from_millis(200));
            return self.check_alive(start);
        };
        let scope = self.values.host_scope();
        let path = match ready.path {
            Some(_) => Some(command::render_text(def, "ready.path", &scope)?),
            None => None,
        };
        let check = match ready.command {
            Some(_) => Some(command::render(def, "ready.command", &scope)?),
            None => None,
        };
        let end = Instant::now() + def.ready_deadline();
        let mut last = String::new();
        loop {
            self.check_alive(start)?;
            let path_ok = path.as_deref().is_none_or(|p| Path::new(p).exists());
            let check_ok = path_ok
                && match &check {
                    None => true,
                    Some(argv) => {
                        let ran = self.runner.run(argv, SHORT_DEADLINE)?;
                        last = command::tail(&ran.output);
                        ran.status.success()
                    }
                };
            if check_ok {
                return Ok(());
            }
            if Instant::now() >= end {
                bail!(
                    "{}: system {}: field `ready`: not ready within {:?}{}",
                    def.path.display(),
                    def.name,
                    def.ready_deadline(),
                    match (path_ok, last.is_empty()) {
                        (false, _) => format!(" ({} did not appear)", path.unwrap_or_default()),
                        (true, false) => format!(" (last check said: {last})"),
                        (true, true) => String::new(),
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails when the start process exited with an error.
    fn check_alive(&self, start: Option<&Spawned>) -> Result<()> {
        let Some(child) = start else { return Ok(()) };
        match child.wait_timeout(Duration::ZERO)? {
            Some(status) if !status.success() => bail!(
                "{} exited at start ({status}): {}",
                self.def.name,
                command::tail(&child.stderr_text())
            ),
            _ => Ok(()),
        }
    }

    /// True when rules can be added while the system runs (one at a time, for the join
    /// delay): always, unless rules only come from a config read at start.
    pub(crate) fn can_add_live(&self) -> bool {
        let s = &self.def.settings;
        let per_rule = s.rules.spawn.is_some() || !s.rules.add.is_empty();
        per_rule || s.rules.config.as_ref().is_some_and(|c| c.apply.is_some())
    }

    /// Installs the rules of `range` (with `timed`, one at a time, stamped).
    pub(crate) fn install(
        &mut self,
        layout: &Layout,
        range: Range<u32>,
        timed: bool,
        children: &mut Vec<Spawned>,
    ) -> Result<Vec<RuleAdd>> {
        let rules: Vec<Rule> = range.map(|i| self.values.rule(layout, i)).collect();
        let has_config = self.def.settings.rules.config.is_some();
        let mut adds = Vec::new();
        if has_config && !timed && !rules.is_empty() {
            self.apply_config(layout, &rules, children)?;
        }
        for rule in &rules {
            let at_ns = super::monotonic_ns();
            if has_config && timed {
                self.apply_config(layout, std::slice::from_ref(rule), children)?;
            }
            self.add_rule(rule, children)?;
            self.installed.insert(rule.index);
            if timed {
                adds.push(RuleAdd {
                    input: rule.index,
                    at_ns,
                });
            }
        }
        Ok(adds)
    }

    /// Writes the config file (the new rules, and every rule installed) and applies it; the
    /// first write of a system that reads its config at start starts it.
    fn apply_config(
        &mut self,
        layout: &Layout,
        new: &[Rule],
        children: &mut Vec<Spawned>,
    ) -> Result<()> {
        let def = self.def.clone();
        let mut indexes: BTreeSet<u32> = self.installed.clone();
        indexes.extend(new.iter().map(|r| r.index));
        let all: Vec<Rule> = indexes
            .iter()
            .map(|&i| self.values.rule(layout, i))
            .collect();
        let path = command::render_text(&def, "rules.config.path", self.values.host_scope())?;
        let text = command::render_text(
            &def,
            "rules.config.template",
            self.values.config_scope(new, &all),
        )?;
        std::fs::write(&path, text).with_context(|| format!("writing {path}"))?;
        if !self.started {
            return self.start(children);
        }
        if !def.has("rules.config.apply") {
            bail!(
                "{}: system {}: cannot add rules while it runs (no rules.config.apply)",
                def.path.display(),
                def.name
            );
        }
        let argv = command::render(&def, "rules.config.apply", self.values.apply_scope(&path))?;
        let ran = self.runner.run(&argv, APPLY_DEADLINE)?;
        self.record("rules.config.apply", &ran);
        Ok(())
    }

    /// Runs the per-rule commands of one rule: its processes and its add commands.
    fn add_rule(&mut self, rule: &Rule, children: &mut Vec<Spawned>) -> Result<()> {
        let def = self.def.clone();
        let targets: Vec<Option<&_>> = match def.settings.rules.each {
            Each::Output => rule.outputs.iter().map(Some).collect(),
            Each::Rule => vec![None],
        };
        let values = self.values.clone();
        for output in targets {
            let scope = values.rule_scope(rule, output);
            if def.settings.rules.spawn.is_some() {
                let argv = command::render(&def, "rules.spawn", &scope)?;
                let child = self.runner.spawn(&argv).with_context(|| {
                    format!("starting process {} of {}", children.len() + 1, def.name)
                })?;
                self.per_rule
                    .entry(rule.index)
                    .or_default()
                    .push(child.pid());
                children.push(child);
            }
            for k in 0..def.settings.rules.add.len() {
                let field = format!("rules.add[{k}]");
                let argv = command::render(&def, &field, &scope)?;
                let ran = self.runner.run(&argv, RULE_COMMAND_DEADLINE)?;
                self.record(&field, &ran);
            }
        }
        Ok(())
    }

    /// Keeps the output of a command that failed or printed an errno text (for the capacity's
    /// error).
    fn record(&mut self, field: &str, ran: &command::Ran) {
        if let Some(line) = ran.output.lines().find(|l| errno_from_text(l).is_some()) {
            self.failures.push(line.trim().to_owned());
        } else if !ran.status.success() {
            self.failures.push(format!(
                "{field} exited with {}: {}",
                ran.status,
                command::tail(&ran.output)
            ));
        }
    }

    /// Adds or removes rule `i` while the system runs.
    pub(crate) fn change(
        &mut self,
        layout: &Layout,
        i: u32,
        add: bool,
        children: &mut Vec<Spawned>,
    ) -> Result<()> {
        if add {
            return self.install(layout, i..i + 1, false, children).map(drop);
        }
        let def = self.def.clone();
        let rule = self.values.rule(layout, i);
        let spawned = self.per_rule.remove(&i).unwrap_or_default();
        if def.settings.rules.remove.is_empty() && spawned.is_empty() {
            bail!(
                "{}: system {}: cannot remove a rule (no rules.remove)",
                def.path.display(),
                def.name
            );
        }
        for k in 0..def.settings.rules.remove.len() {
            let field = format!("rules.remove[{k}]");
            let argv = command::render(&def, &field, self.values.rule_scope(&rule, None))?;
            let ran = self.runner.run(&argv, RULE_COMMAND_DEADLINE)?;
            command::check(&def, &field, &ran)?;
        }
        children.retain(|c| {
            let ours = spawned.contains(&c.pid());
            if ours {
                let _ = c.stop(def.stop_grace());
            }
            !ours
        });
        self.installed.remove(&i);
        Ok(())
    }

    /// `can.joins` of the definition.
    pub(crate) fn joins(&self) -> bool {
        self.def.can().joins
    }

    /// Waits for the installed rules' memberships and reports the capacity; for a system that
    /// does not join (`can.joins = false`), the installed rules are the capacity.
    pub(crate) fn capacity(&self, layout: &Layout, children: &[Spawned]) -> Result<Capacity> {
        let joined = if self.joins() {
            Some(self.wait_for_joins(layout)?)
        } else {
            None
        };
        let error = self.error_text(children);
        let errno = error.as_deref().and_then(errno_from_text);
        Ok(match joined {
            Some(joined) => capacity_from_joins(layout, &joined, errno, error),
            None => capacity_from(layout, |i| self.installed.contains(&i), errno, error),
        })
    }

    /// The relay namespace's joined groups once every installed rule's input group is there,
    /// or the count stalled for [`JOIN_STALL`], or [`JOIN_DEADLINE`] passed.
    fn wait_for_joins(&self, layout: &Layout) -> Result<HashSet<Ipv4Addr>> {
        let installed = self.installed.len();
        let start = Instant::now();
        let (mut last_count, mut last_progress) = (0, Instant::now());
        loop {
            let joined =
                super::igmp::joined_in_netns(&self.values.host.netns, &self.values.input.ifname)
                    .context("reading the relay namespace's igmp table")?;
            let count = self
                .installed
                .iter()
                .filter(|&&i| joined.contains(&layout.input_group(i)))
                .count();
            if count > last_count {
                (last_count, last_progress) = (count, Instant::now());
            }
            if count == installed
                || start.elapsed() > JOIN_DEADLINE
                || last_progress.elapsed() > JOIN_STALL
            {
                return Ok(joined);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The first error the system printed: a rule command's, else an exited process's.
    fn error_text(&self, children: &[Spawned]) -> Option<String> {
        let exited = children
            .iter()
            .filter(|c| !c.is_running())
            .map(|c| command::tail(&c.stderr_text()))
            .filter(|t| !t.is_empty());
        let mut texts = self.failures.iter().cloned().chain(exited);
        let all: Vec<String> = texts.by_ref().collect();
        all.iter()
            .find(|t| errno_from_text(t).is_some())
            .or_else(|| all.first())
            .cloned()
    }

    /// PIDs of every process of the system: everything in the relay namespace.
    pub(crate) fn pids(&self) -> Vec<u32> {
        crate::netns::pids_in(&self.values.host.netns)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .collect()
    }

    /// Processes that died before the stop: a rule's process, or the start process with an
    /// error (a start command that exits 0 has daemonized).
    pub(crate) fn died(&self, children: &[Spawned]) -> Vec<String> {
        children
            .iter()
            .filter_map(|c| {
                let status = c.wait_timeout(Duration::ZERO).ok().flatten()?;
                let daemonized = Some(c.pid()) == self.start_pid && status.success();
                (!daemonized).then(|| {
                    format!(
                        "PID {} exited early ({status}): {}",
                        c.pid(),
                        command::tail(&c.stderr_text())
                    )
                })
            })
            .collect()
    }

    /// Stops every process of the relay namespace: the definition's signal, then SIGKILL.
    pub(crate) fn stop_all(&self) {
        let stop = &self.def.settings.stop;
        let _ = crate::process::stop_pids_in_netns_with(
            &self.values.host.netns,
            &stop.signal,
            self.def.stop_grace(),
        );
    }
}
