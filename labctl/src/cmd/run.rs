//! `labctl run [SCENARIO] [--out DIR] [--quiet] [--repeats N]`: run a scenario sweep.

use labctl::scenario::Scenario;
use labctl::sweep::{SweepOptions, run};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 every point was measured or skipped (a skipped point names its reason, e.g. a missing tool), 4 the sweep ran but some point failed (its reason is printed and in the report), 1 an error before the sweep (a bad scenario or definition: one line, nothing built), 130 interrupted."
)]
pub struct Args {
    /// Scenario name (looked up as scenarios/NAME.toml) or path to a .toml file.
    #[arg(default_value = "quick")]
    pub scenario: String,
    /// Parent directory of the report directory `<scenario>-<UTC time>/`.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub out: PathBuf,
    /// No progress bar (failures are still printed).
    #[arg(long)]
    pub quiet: bool,
    /// Relay binary of a named build (`relay/pool@NAME` in the scenario's systems), overriding
    /// its `[builds.NAME] relay`; repeatable, e.g. `--build base=target-base/release/relay`.
    #[arg(long = "build", value_name = "NAME=PATH", value_parser = parse_build)]
    pub builds: Vec<(String, PathBuf)>,
    /// Measure every point N times (1-100) instead of the scenario's `repeats`: more repeats
    /// narrow the 95 % intervals that goals and `compare` judge on (and take longer).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeats: Option<u32>,
}

fn parse_build(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAME=PATH, e.g. base=/tmp/relay-base"))?;
    if name.is_empty() || path.is_empty() {
        return Err(format!("{text:?}: expected NAME=PATH with both parts"));
    }
    Ok((name.to_owned(), PathBuf::from(path)))
}

/// Every build a system names must have an executable relay: from `--build NAME=PATH`, else
/// from `[builds.NAME] relay` (none there = the current build).
fn check_build_binaries(
    scenario: &Scenario,
    path: &std::path::Path,
    given: &[(String, PathBuf)],
) -> anyhow::Result<()> {
    for system in &scenario.systems {
        let Some(name) = &system.build else { continue };
        let from_cli = given.iter().find(|(n, _)| n == name).map(|(_, p)| p);
        let (binary, source) = match (from_cli, scenario.build_of(system)) {
            (Some(p), _) => (p, format!("--build {name}=...")),
            (None, Some(b)) => match &b.relay {
                Some(p) => (
                    p,
                    format!("{}: field `builds.{name}.relay`", path.display()),
                ),
                None => continue,
            },
            (None, None) => continue,
        };
        anyhow::ensure!(
            labctl::binaries::is_executable(binary),
            "{source}: system {system}: relay binary {} is not an executable file",
            binary.display()
        );
    }
    Ok(())
}

/// Says what is about to run (unless quiet, on stderr, after `who: `), then runs the sweep.
pub fn announce_and_run(
    scenario: &Scenario,
    path: &std::path::Path,
    options: &SweepOptions,
    who: &str,
) -> anyhow::Result<labctl::sweep::SweepOutcome> {
    if !options.quiet {
        eprintln!(
            "{who}: scenario {} ({}): {} points, about {:.0} minutes",
            scenario.name,
            path.display(),
            scenario.points().len(),
            scenario.estimated_seconds() / 60.0
        );
    }
    run(scenario, path, options)
}

pub fn exec(args: Args) -> anyhow::Result<super::Outcome> {
    let path = Scenario::resolve(&args.scenario)?;
    let mut scenario = Scenario::load(&path)?;
    if let Some(repeats) = args.repeats {
        scenario.repeats = repeats;
    }
    for (name, binary) in &args.builds {
        anyhow::ensure!(
            scenario.builds.contains_key(name),
            "--build {name}=...: scenario {} has no [builds.{name}] (it has: {})",
            scenario.name,
            if scenario.builds.is_empty() {
                "none".to_owned()
            } else {
                scenario
                    .builds
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        anyhow::ensure!(
            labctl::binaries::is_executable(binary),
            "--build {name}={}: not an executable file",
            binary.display()
        );
    }
    check_build_binaries(&scenario, &path, &args.builds)?;
    let points = scenario.points().len();
    let options = SweepOptions {
        out_root: args.out,
        quiet: args.quiet,
        build_paths: args.builds.into_iter().collect(),
    };
    let outcome = announce_and_run(&scenario, &path, &options, "labctl")?;
    let count = |f: &dyn Fn(&labctl::results::Status) -> bool| {
        outcome
            .results
            .points
            .iter()
            .filter(|p| f(&p.status))
            .count()
    };
    let unmeasured = count(&|s| !s.is_measured());
    let failed = count(&|s| matches!(s, labctl::results::Status::Failed { .. }));
    let bound = count(&|s| s.is_measured() && !s.is_ok());
    if unmeasured > 0 {
        eprintln!(
            "labctl: {unmeasured} of {points} points did not measure ({failed} failed, the rest skipped; see the report)"
        );
    }
    if bound > 0 {
        eprintln!(
            "labctl: {bound} of {points} points were bound by the load generator or the sink: no verdict about their asked load (see the report)"
        );
    }
    for judged in labctl::report::goals::judge_all(&outcome.results) {
        eprintln!(
            "labctl: goal {}",
            labctl::report::goals::summary_line(&judged)
        );
    }
    println!("{}", outcome.results_path.display());
    println!("{}", outcome.report_path.display());
    if failed > 0 {
        return Ok(super::Outcome::PointsFailed);
    }
    Ok(super::Outcome::Done)
}
