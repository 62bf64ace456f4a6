//! `labctl run [SCENARIO] [--out DIR] [--quiet]`: run a scenario sweep.

use labctl::scenario::Scenario;
use labctl::sweep::{SweepOptions, run};
use std::path::PathBuf;

#[derive(clap::Args)]
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
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let path = Scenario::resolve(&args.scenario)?;
    let scenario = Scenario::load(&path)?;
    let points = scenario.points().len();
    if !args.quiet {
        eprintln!(
            "labctl: scenario {} ({}): {points} points, about {:.0} minutes",
            scenario.name,
            path.display(),
            scenario.estimated_seconds() / 60.0
        );
    }
    let outcome = run(
        &scenario,
        &path,
        &SweepOptions {
            out_root: args.out,
            quiet: args.quiet,
        },
    )?;
    let failed = outcome
        .results
        .points
        .iter()
        .filter(|p| !p.status.is_ok())
        .count();
    if failed > 0 {
        eprintln!("labctl: {failed} of {points} points did not measure (see the report)");
    }
    println!("{}", outcome.results_path.display());
    println!("{}", outcome.report_path.display());
    Ok(())
}
