//! Runs a scenario: every point (with repeats) measured in turn, results.json written after each
//! point (so an interrupted sweep keeps what it finished), then the HTML report.
//!
//! Ctrl-C: the process module's signal handler stops the children and tears the topology down;
//! the cleanup registered here marks results.json as interrupted and renders the report of the
//! finished points before labctl exits.

pub mod ceiling;
pub mod counters;
pub mod cpu;
pub mod environment;
pub mod exclusive;
pub mod join_delay;
pub mod point;
pub mod results_file;
pub mod sample;
pub mod traffic;
pub mod zero_loss;

use crate::placement::Placement;
use crate::results::{PointResult, Results, Status, compact_stamp, now_rfc3339};
use crate::scenario::Scenario;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use results_file::ResultsFile;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Name of the results file in a report directory.
pub const RESULTS_FILE: &str = "results.json";
const CLEANUP_KEY: &str = "sweep:finish-report";

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Parent of the report directory (`reports/`).
    pub out_root: PathBuf,
    /// No progress bar.
    pub quiet: bool,
    /// Relay binaries of named builds (`--build NAME=PATH`), overriding `[builds.NAME] relay`.
    pub build_paths: BTreeMap<String, PathBuf>,
}

/// Where a finished sweep wrote its files.
#[derive(Debug)]
pub struct SweepOutcome {
    pub dir: PathBuf,
    pub results_path: PathBuf,
    pub report_path: PathBuf,
    pub results: Results,
}

/// Runs every point of `scenario` (read from `path`).
pub fn run(scenario: &Scenario, path: &Path, opts: &SweepOptions) -> Result<SweepOutcome> {
    crate::process::install_signal_cleanup()?;
    let dir = opts.out_root.join(format!(
        "{}-{}",
        scenario.name,
        compact_stamp(SystemTime::now())
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let results_path = dir.join(RESULTS_FILE);

    let placement = Placement::detect(scenario.isolation);
    for problem in &placement.problems {
        eprintln!("labctl: isolation: {problem}");
    }
    let restore = placement
        .pin_labctl()
        .context("pinning labctl to the load generator's CPUs")?;
    let outcome = run_placed(scenario, path, opts, &placement, &dir, &results_path);
    if let Some(cpus) = restore {
        let _ = crate::process::sched::pin_current_thread(&cpus);
    }
    outcome
}

fn run_placed(
    scenario: &Scenario,
    path: &Path,
    opts: &SweepOptions,
    placement: &Placement,
    dir: &Path,
    results_path: &Path,
) -> Result<SweepOutcome> {
    let mut results = Results::new(scenario, path, environment::collect());
    results.isolation = placement.record();
    let file = ResultsFile::create(results_path, results)?;
    register_interrupt_report(&file, dir);

    let sends_traffic = scenario.capacity.as_ref().is_none_or(|c| c.send_traffic);
    if sends_traffic {
        if !opts.quiet {
            eprintln!("labctl: measuring the load generator's own ceiling (direct, no system)");
        }
        let ceilings = ceiling::measure(scenario, placement);
        file.update(|r| r.isolation.ceilings = ceilings)?;
    }
    let ceilings = file.snapshot().isolation.ceilings;
    let definitions = point::load_definitions(scenario)?;
    let bench = point::Bench {
        scenario,
        placement,
        ceilings: &ceilings,
        build_paths: &opts.build_paths,
        definitions: &definitions,
    };
    measure_points(&bench, &file, opts.quiet)?;
    file.update(|r| r.finished = Some(now_rfc3339()))?;
    let results = file.snapshot();
    let report_path = crate::report::write(&results, dir)?;
    crate::process::unregister_cleanup(CLEANUP_KEY);
    Ok(SweepOutcome {
        dir: dir.to_path_buf(),
        results_path: results_path.to_path_buf(),
        report_path,
        results,
    })
}

/// Measures every point in turn, adding each to the results file as soon as it is done. The
/// systems' turns at one point of one pass are measured under one hold of the machine's
/// measurement lock: another sweep waiting for the lock (a second `labctl run` or `ab`) can
/// then never measure between the two sides of a pair, where its own turns (a slowed build,
/// say) would always precede the same side and bias the comparison.
fn measure_points(bench: &point::Bench<'_>, file: &ResultsFile, quiet: bool) -> Result<()> {
    let points = bench.scenario.points();
    let bar = progress_bar(points.len() as u64, quiet);
    for turn in points.chunk_by(|a, b| a.same_turn(b)) {
        if crate::process::interrupted() {
            break;
        }
        let lock = exclusive::MeasureLock::acquire();
        for p in turn {
            if crate::process::interrupted() {
                break;
            }
            bar.set_message(p.to_string());
            let measured = match &lock {
                Ok(held) => point::measure(bench, p, held),
                Err(e) => PointResult::empty(
                    p.clone(),
                    Status::Failed {
                        reason: format!("{e:#}"),
                    },
                ),
            };
            report_status(&bar, p, &measured, quiet);
            file.update(|r| {
                r.points.push(measured);
                r.refresh_aggregates();
            })?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// Prints why a point was not measured (skipped or failed), above the progress bar.
fn report_status(
    bar: &ProgressBar,
    p: &crate::scenario::Point,
    measured: &PointResult,
    quiet: bool,
) {
    if let Some(reason) = measured.status.reason() {
        let line = format!("{p}: {}: {reason}", measured.status.label());
        if quiet {
            eprintln!("labctl: {line}");
        } else {
            bar.println(line);
        }
    }
}

fn progress_bar(len: u64, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if quiet || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    } else if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} points, ETA {eta}  {wide_msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// On SIGINT/SIGTERM: mark the saved results as interrupted and render their report.
fn register_interrupt_report(file: &ResultsFile, dir: &Path) {
    let file = file.clone();
    let dir = dir.to_path_buf();
    crate::process::register_cleanup(
        CLEANUP_KEY.to_owned(),
        Box::new(move || {
            let finish = || -> Result<PathBuf> {
                let results = file.mark_interrupted()?;
                crate::report::write(&results, &dir)
            };
            match finish() {
                Ok(report) => eprintln!(
                    "labctl: interrupted; finished points kept in {} and {}",
                    file.path().display(),
                    report.display()
                ),
                Err(e) => eprintln!("labctl: interrupted; could not finish the report: {e:#}"),
            }
        }),
    );
}
