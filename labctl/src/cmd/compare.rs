//! `labctl compare BASELINE.json CURRENT.json`: the regression gate.

use anyhow::Context as _;
use labctl::compare::{REGRESSION_EXIT_CODE, compare};
use labctl::results::Results;
use std::path::PathBuf;

/// Compare two results.json files; print a side-by-side table.
///
/// Judged on delivered % (absolute drop) and on ratios against baselines measured in the same run
/// (CPU per Mpkt over the load generator's, zero-loss throughput over direct's), with the repeats'
/// spread as noise; never on absolute times alone.
///
/// Exit status: 0 = no regression, 3 = regression beyond tolerance and noise, 1 = error.
#[derive(clap::Args)]
#[command(after_help = "Exit status: 0 no regression, 3 regression beyond noise, 1 error.")]
pub struct Args {
    /// The stored baseline results.json.
    pub baseline: PathBuf,
    /// The results.json to judge.
    pub current: PathBuf,
    /// Allowed drop of delivered %, in percentage points (default: the current scenario's
    /// `compare.delivered_drop_pct`).
    #[arg(long, value_name = "POINTS")]
    pub tolerance: Option<f64>,
    /// Allowed relative worsening of a ratio, e.g. 0.25 (default: the scenario's
    /// `compare.ratio_tolerance`).
    #[arg(long, value_name = "FRACTION")]
    pub ratio_tolerance: Option<f64>,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let baseline = Results::load(&args.baseline).context("loading the baseline")?;
    let current = Results::load(&args.current).context("loading the current results")?;
    let mut tolerances = current.scenario.definition.compare.clone();
    if let Some(t) = args.tolerance {
        anyhow::ensure!(
            t.is_finite() && t >= 0.0,
            "--tolerance {t}: give a number of percentage points >= 0, e.g. 1.0"
        );
        tolerances.delivered_drop_pct = t;
    }
    if let Some(t) = args.ratio_tolerance {
        anyhow::ensure!(
            t.is_finite() && t >= 0.0,
            "--ratio-tolerance {t}: give a fraction >= 0, e.g. 0.25"
        );
        tolerances.ratio_tolerance = t;
    }
    let comparison = compare(&baseline, &current, &tolerances);
    println!(
        "baseline {} ({})\ncurrent  {} ({})\n",
        args.baseline.display(),
        baseline.started,
        args.current.display(),
        current.started
    );
    print!("{}", comparison.table());
    if comparison.has_regression() {
        eprintln!("labctl: regression beyond noise (exit {REGRESSION_EXIT_CODE})");
        std::process::exit(REGRESSION_EXIT_CODE);
    }
    Ok(())
}
