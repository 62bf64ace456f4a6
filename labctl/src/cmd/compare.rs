//! `labctl compare`: the regression gate, across two runs or between two builds of one run.

use super::Outcome;
use anyhow::{Context as _, bail};
use labctl::compare::{Comparison, REGRESSION_EXIT_CODE, compare, compare_ab};
use labctl::results::Results;
use labctl::scenario::System;
use std::path::PathBuf;

/// Judge this project's relay on delivered %, zero-loss rate and CPU per packet.
///
/// Two forms:
///   labctl compare BASELINE.json CURRENT.json       two runs on one machine
///   labctl compare --ab RESULTS.json                two builds measured in one run (CI)
///
/// With --ab, the system `--baseline` (default relay/pool@base) is the reference and
/// `--current` (default relay/pool) is judged, point by point, from interleaved repeats of the
/// same run: the machine's speed and drift cancel out. A worsening fails the gate when it is at
/// least the scenario's `compare.min_effect_pct` and significant (its interval excludes 0:
/// Student's t on the paired repeats' ratios with --ab, Welch's t across two runs), or a drop of
/// delivered % beyond `compare.delivered_drop_pct` points. The checks are judged as a family:
/// with m of them each interval is at 1 - 5 %/m (Bonferroni, `compare.family_confidence_pct`),
/// so unchanged code passes the whole comparison with at least 95 % however many points it has. A point or
/// metric the baseline has and the current lacks, a current point bound by the load generator
/// or the sink, and an interrupted run also fail.
#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 the gate passes, 3 it fails (regression, missing or unmeasurable point, interrupted run), 1 error.\nWith --expect-regression: 0 when a regression was found, 3 when none was (proves the gate can fail)."
)]
pub struct Args {
    /// BASELINE.json CURRENT.json (or nothing with --ab).
    #[arg(value_name = "FILE", num_args = 0..=2)]
    pub files: Vec<PathBuf>,
    /// Compare two systems of one results.json (same-run A/B).
    #[arg(long, value_name = "RESULTS.json", conflicts_with = "files")]
    pub ab: Option<PathBuf>,
    /// With --ab: the reference system.
    #[arg(
        long,
        value_name = "SYSTEM",
        default_value = "relay/pool@base",
        requires = "ab"
    )]
    pub baseline: String,
    /// With --ab: the judged system.
    #[arg(
        long,
        value_name = "SYSTEM",
        default_value = "relay/pool",
        requires = "ab"
    )]
    pub current: String,
    /// Succeed only if a regression is found at every compared point (for a deliberately slowed
    /// build: proves the gate's power at each).
    #[arg(long)]
    pub expect_regression: bool,
    /// Allowed drop of delivered %, in percentage points (default: the scenario's).
    #[arg(long, value_name = "POINTS")]
    pub tolerance: Option<f64>,
    /// Smallest worsening, in per cent, that fails the gate when significant (default: the
    /// scenario's `compare.min_effect_pct`).
    #[arg(long, value_name = "PERCENT")]
    pub min_effect: Option<f64>,
}

pub fn exec(args: Args) -> anyhow::Result<Outcome> {
    let comparison = match (&args.ab, args.files.as_slice()) {
        (Some(path), _) => {
            let run = Results::load(path).context("loading the results")?;
            let baseline: System = args.baseline.parse().map_err(anyhow::Error::msg)?;
            let current: System = args.current.parse().map_err(anyhow::Error::msg)?;
            let tol = tolerances(&args, &run)?;
            println!(
                "run {} ({})\nbaseline {baseline}, judged {current}\n",
                path.display(),
                run.started
            );
            compare_ab(&run, &baseline, &current, &tol)
        }
        (None, [baseline_path, current_path]) => {
            let baseline = Results::load(baseline_path).context("loading the baseline")?;
            let current = Results::load(current_path).context("loading the current results")?;
            let tol = tolerances(&args, &current)?;
            println!(
                "baseline {} ({})\ncurrent  {} ({})\n",
                baseline_path.display(),
                baseline.started,
                current_path.display(),
                current.started
            );
            compare(&baseline, &current, &tol)
        }
        _ => bail!("give BASELINE.json CURRENT.json, or --ab RESULTS.json"),
    };
    print!("{}", comparison.table());
    Ok(verdict(&comparison, args.expect_regression))
}

fn tolerances(args: &Args, run: &Results) -> anyhow::Result<labctl::scenario::CompareTolerances> {
    let mut t = run.scenario.definition.compare.clone();
    if let Some(v) = args.tolerance {
        anyhow::ensure!(
            v.is_finite() && v >= 0.0,
            "--tolerance {v}: give a number of percentage points >= 0, e.g. 1.0"
        );
        t.delivered_drop_pct = v;
    }
    if let Some(v) = args.min_effect {
        anyhow::ensure!(
            v.is_finite() && v >= 0.0,
            "--min-effect {v}: give a percentage >= 0, e.g. 5"
        );
        t.min_effect_pct = v;
    }
    Ok(t)
}

/// The gate's verdict, said on stderr; `main` turns it into the exit status.
fn verdict(c: &Comparison, expect_regression: bool) -> Outcome {
    if expect_regression {
        let powerless = c.points_without_regression();
        if c.has_regression() && powerless.is_empty() {
            eprintln!(
                "labctl: the expected regression was found at every point: the gate can fail"
            );
            return Outcome::Done;
        }
        for point in &powerless {
            eprintln!("labctl: no regression found where one was expected: {point}");
        }
        eprintln!(
            "labctl: the gate has no power at {} point(s) (exit {REGRESSION_EXIT_CODE})",
            powerless.len().max(1)
        );
        return Outcome::GateFailed;
    }
    if c.fails() {
        eprintln!("labctl: the gate fails (exit {REGRESSION_EXIT_CODE})");
        return Outcome::GateFailed;
    }
    Outcome::Done
}
